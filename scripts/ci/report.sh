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
if [[ -d $1 ]]; then
  mapfile -t history < <(find "$1" -type f -name '[0-9][0-9][0-9][0-9]_*.json' -not -path '*/.git/*' -printf '%f\t%p\n' |
    LC_ALL=C sort | tail -n $((count - 1)) | cut -f 2)
fi
"$LLMBENCH" report "${history[@]}" "$2" --history "$count" --output "$3"
