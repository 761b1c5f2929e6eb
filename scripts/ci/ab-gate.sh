#!/usr/bin/env bash
# Pull requests: the gate over the shards' paired A/B runs (scripts/ci/ab-shard.sh). Every shard's
# verdict goes, in shard order and under a heading naming the shard, to VERDICT and to the job
# summary; the gate fails when any shard's `llmbench ab` failed (a regression, a failed benchmark,
# an error) or left no status, and when a shard of the N the plan ran left no folder under SHARDS_DIR
# (its job uploaded nothing: it failed or was cancelled before its upload step).
#
#   scripts/ci/ab-gate.sh SHARDS_DIR VERDICT [N]
#
#   N   the number of shards the plan ran (the workflow passes the plan's count); without it, the N in
#       the shards' folder names (ab-shard-K-of-N), which cannot tell that the last shards are missing
#       when no shard uploaded anything, or that all shards are
set -euo pipefail
if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 SHARDS_DIR VERDICT [N]" >&2
  exit 2
fi
shards=$1 verdict=$2 count=${3:-}
if [[ -n $count && ! $count =~ ^[1-9][0-9]*$ ]]; then
  echo "ab-gate: N=$count is not a number of shards (1 or more)" >&2
  exit 2
fi
mkdir -p "$(dirname "$verdict")"
mapfile -t dirs < <(find "$shards" -type d -name 'ab-shard-*-of-*' | LC_ALL=C sort -V)
# The shards' folders by K, and N from their names where the plan's count is not given.
declare -A folder=()
for dir in "${dirs[@]}"; do
  name=${dir##*/ab-shard-}
  k=${name%%-of-*} n=${name##*-of-}
  if [[ -z $count ]]; then
    count=$n
  fi
  if [[ $n != "$count" || -n ${folder[$k]:-} ]]; then
    echo "ab-gate: $dir is not one of the $count shards of this run (or a second copy of one)" >&2
    exit 2
  fi
  folder[$k]=$dir
done
no_upload="No paired run: this shard's job uploaded nothing (it failed or was cancelled before its upload; see its log)."
status=0
failed=()
{
  printf '## llmbench verdict: base and head paired on each runner (`llmbench ab`)\n\n'
  if [[ ${#dirs[@]} -eq 0 ]]; then
    printf 'No shard left a paired run under `%s`.\n\n' "$shards"
    status=1
  fi
  for ((k = 1; k <= ${count:-0}; k++)); do
    dir=${folder[$k]:-}
    if [[ -z $dir ]]; then
      failed+=("$k/$count (uploaded nothing)")
      status=1
      printf '### Shard %s/%s\n\n%s\n\n' "$k" "$count" "$no_upload"
      continue
    fi
    shard_status=$(cat "$dir/status" 2>/dev/null || echo missing)
    if [[ $shard_status != 0 ]]; then
      failed+=("$k/$count (status $shard_status)")
      status=1
    fi
    if [[ -s $dir/verdict.md ]]; then
      # The shard's own heading names the shard: "## llmbench regression gate: ..." -> "### Shard K/N: ...".
      sed "1s|^## |### Shard $k/$count: |" "$dir/verdict.md"
    else
      printf '### Shard %s/%s\n\nNo verdict.\n' "$k" "$count"
    fi
    printf '\n'
  done
  if [[ ${#failed[@]} -gt 0 ]]; then
    printf '**FAILED** in shard %s.\n' "$(IFS=,; echo "${failed[*]}" | sed 's/,/, /g')"
  fi
} >"$verdict"
if [[ -n ${GITHUB_STEP_SUMMARY:-} ]]; then
  cat "$verdict" >>"$GITHUB_STEP_SUMMARY"
fi
echo "ab-gate: ${#dirs[@]} of ${count:-0} shards uploaded, ${#failed[@]} failed; verdict in $verdict (exit status $status)"
exit "$status"
