#!/usr/bin/env bash
# Pull requests: shard K of N of the benchmark matrix measured as a paired A/B run (`llmbench ab`,
# docs/ab.md): BASE (a commit of this repository) against the checkout as it is, interleaved on
# this runner. Everything goes to $LLMBENCH_RESULTS/ab-shard-K-of-N/ (default results/): the pair's
# runs (runs/), the verdict (verdict.md) and ab's exit status (status). A regression (status 1) is
# left to the gate job (scripts/ci/ab-gate.sh), so this exits 0 for it; bad input exits non-zero.
#
#   scripts/ci/ab-shard.sh BASE K N [pytest arguments...]
#
#   LLMBENCH         the llmbench command (default .venv/bin/llmbench)
#   LLMBENCH_ARGS    extra pytest arguments (the workflow's plan), split on spaces
#   LLMBENCH_AB_ARGS extra `llmbench ab` options (e.g. --loads=3 --rounds=5), split on spaces
#   LLMBENCH_SUITE   the suite to run (default benchmarks)
#   LLMBENCH_SHARD_COSTS  saved runs that balance the split (read by the plugin when llmbench ab collects
#                    the head side; the workflow: the plan's commit of the history, the same on every shard)
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: $0 BASE K N [pytest arguments...]" >&2
  exit 2
fi
base=$1 k=$2 n=$3
shift 3
LLMBENCH=${LLMBENCH:-.venv/bin/llmbench}
out=${LLMBENCH_RESULTS:-results}/ab-shard-$k-of-$n
mkdir -p "$out"
read -ra extra <<<"${LLMBENCH_ARGS:-}"
read -ra ab_args <<<"${LLMBENCH_AB_ARGS:-}"
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT

status=0
# stdout as it is; stderr (progress, errors) shown and kept in $errors; the status is ab's (pipefail).
# The job summary gets the verdict below, with the checkout's paths made relative.
{
  GITHUB_STEP_SUMMARY='' "$LLMBENCH" ab "$base" HEAD "${ab_args[@]}" -- "${LLMBENCH_SUITE:-benchmarks}" -p no:cacheprovider \
    "--llmbench-shard=$k/$n" "--benchmark-storage=$out/runs" "--llmbench-verdict=$out/verdict.md" \
    "${extra[@]}" "$@" 2>&1 >&3 3>&- | tee "$errors" >&2 3>&-
} 3>&1 || status=$?
if [[ $status -eq 2 ]] && grep -q "select no generate benchmark" "$errors"; then
  echo "ab-shard: shard $k/$n has no benchmarks (more shards than the matrix can fill)"
  printf '### Shard %s/%s\n\nNo benchmarks in this shard.\n' "$k" "$n" >"$out/verdict.md"
  status=0
fi
echo "$status" >"$out/status"
if [[ ! -s $out/verdict.md ]]; then
  printf '### Shard %s/%s\n\n`llmbench ab` exited with status %s and wrote no verdict.\n' "$k" "$n" "$status" >"$out/verdict.md"
fi
# The verdict names the pair's run files: relative to the checkout, not the runner's absolute paths
# (the gate job's summary and the pull-request comment show it).
verdict=$(<"$out/verdict.md")
for root in "$(pwd -P)/" "$PWD/"; do
  verdict=${verdict//"$root"/}
done
printf '%s\n' "$verdict" >"$out/verdict.md"
if [[ -n ${GITHUB_STEP_SUMMARY:-} ]]; then
  cat "$out/verdict.md" >>"$GITHUB_STEP_SUMMARY"
fi
echo "ab-shard: shard $k/$n: $base against HEAD, exit status $status, verdict in $out/verdict.md"
if [[ $status -eq 1 ]]; then
  exit 0 # a regression, or a failed benchmark: the gate job decides, with every shard's verdict
fi
exit "$status"
