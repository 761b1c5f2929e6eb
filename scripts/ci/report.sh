#!/usr/bin/env bash
# Write the HTML and markdown report of RUN with the latest runs of the history before it to DIR
# (DIR/index.html, DIR/report.md).
#
#   scripts/ci/report.sh HISTORY_DIR RUN DIR
#
#   LLMBENCH_REPORT_HISTORY   how many runs the report shows, RUN included (default 10)
set -euo pipefail
if [[ $# -ne 3 ]]; then
  echo "usage: $0 HISTORY_DIR RUN DIR" >&2
  exit 2
fi
LLMBENCH=${LLMBENCH:-.venv/bin/llmbench}
count=${LLMBENCH_REPORT_HISTORY:-10}
history=()
if [[ $count -gt 1 ]]; then
  # The newest runs of the history before RUN (highest NNNN_ numbers), oldest first.
  mapfile -t history < <("$LLMBENCH" runs latest --storage "$1" --count $((count - 1)))
fi
"$LLMBENCH" report "${history[@]}" "$2" --history "$count" --output "$3"
