#!/usr/bin/env bash
# Fetch the benchmark history (the `benchmark-data` branch) into DIR, read-only. An absent branch
# (no run recorded yet) gives an empty DIR.
#
#   scripts/ci/fetch-history.sh DIR
#
#   LLMBENCH_HISTORY_REMOTE   the repository (default: this GitHub repository)
#   LLMBENCH_HISTORY_BRANCH   the branch (default benchmark-data)
#   GH_TOKEN                  a token that may read the repository (private repositories)
set -euo pipefail
if [[ $# -ne 1 ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
# shellcheck source=scripts/ci/history-remote.sh
source "$(dirname "$0")/history-remote.sh"

if [[ -e $dir && ! -d $dir/.git && -n $(ls -A "$dir" 2>/dev/null) ]]; then
  echo "fetch-history: $dir exists and is not a history clone; refusing to replace it" >&2
  exit 2
fi
rm -rf "$dir"
status=0
git "${auth[@]}" ls-remote --exit-code --heads "$remote" "$branch" >/dev/null || status=$?
if [[ $status -eq 2 ]]; then
  mkdir -p "$dir"
  echo "fetch-history: no branch $branch yet: no baseline"
  exit 0
elif [[ $status -ne 0 ]]; then
  echo "fetch-history: cannot reach $remote (git ls-remote exit $status)" >&2
  exit "$status"
fi
git "${auth[@]}" clone --quiet --depth 1 --single-branch --branch "$branch" "$remote" "$dir"
echo "fetch-history: $(find "$dir" -name '*.json' -not -path '*/.git/*' | wc -l) runs in $dir"
