#!/usr/bin/env bash
# Fetch the benchmark history (the `benchmark-data` branch) into DIR, read-only. An absent branch
# (no run recorded yet) gives an empty DIR. With COMMIT, that commit of the history (the plan's, from
# scripts/ci/history-commit.sh, so that every shard reads the same runs); COMMIT given empty (no
# history when the plan ran) gives an empty DIR without asking the remote.
#
#   scripts/ci/fetch-history.sh DIR [COMMIT]
#
#   LLMBENCH_HISTORY_REMOTE   the repository (default: this GitHub repository)
#   LLMBENCH_HISTORY_BRANCH   the branch (default benchmark-data)
#   GH_TOKEN                  a token that may read the repository (private repositories)
set -euo pipefail
if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 DIR [COMMIT]" >&2
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
if [[ $# -eq 2 ]]; then
  commit=$2
  if [[ -z $commit ]]; then
    mkdir -p "$dir"
    echo "fetch-history: the plan saw no history: no saved runs"
    exit 0
  elif ! [[ $commit =~ ^[0-9a-f]{40}([0-9a-f]{24})?$ ]]; then
    echo "fetch-history: COMMIT=$commit is not a full commit id (40 or 64 hex digits)" >&2
    exit 2
  fi
  git init --quiet "$dir"
  git -C "$dir" "${auth[@]}" fetch --quiet --depth 1 "$remote" "$commit"
  git -C "$dir" checkout --quiet --detach FETCH_HEAD
  echo "fetch-history: $(find "$dir" -name '*.json' -not -path '*/.git/*' | wc -l) runs in $dir (at $commit)"
  exit 0
fi
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
