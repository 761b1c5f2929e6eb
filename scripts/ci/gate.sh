#!/usr/bin/env bash
# The gate: compare RUN with the latest run in the history folder, write the verdict (markdown) to
# VERDICT and to the job summary, and exit with the gate's status (non-zero on a regression).
# Without a baseline (the first run, or a base branch with no history) it says so and passes.
#
#   scripts/ci/gate.sh HISTORY_DIR RUN VERDICT
set -euo pipefail
if [[ $# -ne 3 ]]; then
  echo "usage: $0 HISTORY_DIR RUN VERDICT" >&2
  exit 2
fi
history=$1 run=$2 verdict=$3
LLMBENCH=${LLMBENCH:-.venv/bin/llmbench}
here=$(dirname "$0")
mkdir -p "$(dirname "$verdict")"
summary=${GITHUB_STEP_SUMMARY:-/dev/null}
before=$(wc -c <"$summary" 2>/dev/null || echo 0)

baseline=$("$here/latest-run.sh" "$history")
status=0
if [[ -z $baseline ]]; then
  printf '## llmbench verdict\n\nNo baseline: no run recorded in `%s` yet. Nothing to compare; the run is kept as an artifact.\n' \
    "$history" >"$verdict"
else
  echo "gate: comparing $run with the baseline $baseline"
  "$LLMBENCH" compare "$baseline" "$run" --verdict "$verdict" || status=$?
  if [[ ! -s $verdict ]]; then
    printf '## llmbench verdict\n\n`llmbench compare` exited with status %s and wrote no verdict.\n' "$status" >"$verdict"
  fi
fi
# `llmbench compare` writes $GITHUB_STEP_SUMMARY itself; add the verdict only when it did not.
if [[ $summary != /dev/null && $(wc -c <"$summary") == "$before" ]]; then
  cat "$verdict" >>"$summary"
fi
echo "gate: verdict in $verdict (exit status $status)"
exit "$status"
