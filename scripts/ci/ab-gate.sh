#!/usr/bin/env bash
# Pull requests: the gate over the shards' paired A/B runs (scripts/ci/ab-shard.sh). Every shard's
# verdict goes, in shard order and under a heading naming the shard, to VERDICT and to the job
# summary; the gate fails when any shard's `llmbench ab` failed (a regression, a failed benchmark,
# an error) or left no status.
#
#   scripts/ci/ab-gate.sh SHARDS_DIR VERDICT
set -euo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: $0 SHARDS_DIR VERDICT" >&2
  exit 2
fi
shards=$1 verdict=$2
mkdir -p "$(dirname "$verdict")"
mapfile -t dirs < <(find "$shards" -type d -name 'ab-shard-*-of-*' | LC_ALL=C sort -V)
status=0
failed=()
{
  printf '## llmbench verdict: base and head paired on each runner (`llmbench ab`)\n\n'
  if [[ ${#dirs[@]} -eq 0 ]]; then
    printf 'No shard left a paired run under `%s`.\n' "$shards"
    status=1
  fi
  for dir in "${dirs[@]}"; do
    name=${dir##*/ab-shard-}
    shard_status=$(cat "$dir/status" 2>/dev/null || echo missing)
    if [[ $shard_status != 0 ]]; then
      failed+=("${name/-of-//} (status $shard_status)")
      status=1
    fi
    if [[ -s $dir/verdict.md ]]; then
      # The shard's own heading names the shard: "## llmbench regression gate: ..." -> "### Shard K/N: ...".
      sed "1s|^## |### Shard ${name/-of-//}: |" "$dir/verdict.md"
    else
      printf '### Shard %s\n\nNo verdict.\n' "${name/-of-//}"
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
echo "ab-gate: ${#dirs[@]} shards, ${#failed[@]} failed; verdict in $verdict (exit status $status)"
exit "$status"
