#!/usr/bin/env bash
# The gate job's last step before its upload: when a step of the job failed, say which at the end of
# VERDICT and of the job summary, so the verdict (and the pull-request comment made of it) never reads
# "no regression" while the check is red because another step (the report, the change points) failed.
# STEPS is the job's steps context as JSON (`toJSON(steps)`: each step id with its outcome); the IDs
# given are the steps whose failure the verdict itself explains (the gates), left out.
#
#   scripts/ci/failed-steps.sh VERDICT [ID...]
set -euo pipefail
if [[ $# -lt 1 ]]; then
  echo "usage: $0 VERDICT [ID...]" >&2
  exit 2
fi
verdict=$1
shift
: "${STEPS:?set STEPS to the steps context of the job as JSON, toJSON(steps)}"
# The failed steps' ids, one a line, less the ones given.
program='import json, os, sys
steps = json.loads(os.environ["STEPS"])
for name, step in steps.items():
    if step.get("outcome") == "failure" and name not in sys.argv[1:]:
        print(name)'
mapfile -t ids < <("${PYTHON:-python3}" -c "$program" "$@")
failed=$(printf '`%s`, ' "${ids[@]}")
failed=${failed%, }
if [[ ${#ids[@]} -eq 0 ]]; then
  echo "failed-steps: no other step failed"
  exit 0
fi
mkdir -p "$(dirname "$verdict")"
note="**This check failed** in the gate job's step $failed, which the verdict above does not cover: see the workflow run."
printf '\n%s\n' "$note" >>"$verdict"
if [[ -n ${GITHUB_STEP_SUMMARY:-} ]]; then
  printf '\n%s\n' "$note" >>"$GITHUB_STEP_SUMMARY"
fi
echo "failed-steps: $failed failed; noted in $verdict"
