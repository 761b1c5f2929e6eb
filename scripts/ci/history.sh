#!/usr/bin/env bash
# Change points in the benchmark history (docs/history.md): `llmbench history` over HISTORY_DIR (one
# runner kind of the benchmark-data branch), with RUN (tonight's merged run, not recorded yet) added
# as the newest run. The table goes to the job summary; the exit status is llmbench history's (1 on a
# regression change point among the newest LLMBENCH_HISTORY_SINCE runs, default 10).
#
#   scripts/ci/history.sh HISTORY_DIR [RUN]
set -euo pipefail
if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 HISTORY_DIR [RUN]" >&2
  exit 2
fi
history=$1 run=${2:-}
LLMBENCH=${LLMBENCH:-.venv/bin/llmbench}
LLMBENCH=$(realpath "$LLMBENCH")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A copy named like the history folder (its name is what the table shows).
name=$(basename "$(realpath -m "$history")")
work=$tmp/$name
mkdir -p "$work"

if [[ -d $history ]]; then
  (cd "$history" && find . -type f -name '[0-9][0-9][0-9][0-9]_*.json' -not -path './.git/*' -print0 |
    xargs -0 -r cp --parents -t "$work")
fi
if [[ -n $run ]]; then
  # The run's storage folder (pytest-benchmark's machine id) and commit, as record-history.sh names them.
  machine=$("$LLMBENCH" runs machine-id "$run")
  commit=$("$LLMBENCH" runs commit "$run")
  last=$(basename "$("$LLMBENCH" runs latest --storage "$work")" | cut -c 1-4)
  mkdir -p "$work/$machine"
  cp "$run" "$work/$machine/$(printf '%04d' $((10#${last:-0} + 1)))_${commit:0:12}.json"
fi
if [[ -z $(find "$work" -type f -name '*.json' -print -quit) ]]; then
  echo "history: no saved run in $history: nothing to analyse"
  exit 0
fi
status=0
(cd "$tmp" && "$LLMBENCH" history --storage "$name" --since "${LLMBENCH_HISTORY_SINCE:-10}") || status=$?
echo "history: exit status $status"
exit "$status"
