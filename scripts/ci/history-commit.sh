#!/usr/bin/env bash
# The commit the benchmark history (the `benchmark-data` branch) is at now, for the plan: every shard
# then fetches exactly that commit (scripts/ci/fetch-history.sh DIR COMMIT) and balances its split by
# the same saved runs (a run recorded between two shards' fetches would split them differently, and
# `llmbench merge` refuses shards that split differently). Writes commit=<sha> to $GITHUB_OUTPUT (and
# stdout); empty where the branch does not exist yet (the first night: every cost estimated).
#
#   scripts/ci/history-commit.sh
#
#   LLMBENCH_HISTORY_REMOTE   the repository (default: this GitHub repository)
#   LLMBENCH_HISTORY_BRANCH   the branch (default benchmark-data)
#   GH_TOKEN                  a token that may read the repository (private repositories)
set -euo pipefail
# shellcheck source=scripts/ci/history-remote.sh
source "$(dirname "$0")/history-remote.sh"

status=0
heads=$(git "${auth[@]}" ls-remote --exit-code --heads "$remote" "$branch") || status=$?
if [[ $status -eq 2 ]]; then
  commit=
  echo "history-commit: no branch $branch yet: the shards estimate every cost" >&2
elif [[ $status -ne 0 ]]; then
  echo "history-commit: cannot reach $remote (git ls-remote exit $status)" >&2
  exit "$status"
else
  commit=${heads%%[[:space:]]*}
  echo "history-commit: $branch is at $commit" >&2
fi
if [[ -n ${GITHUB_OUTPUT:-} ]]; then
  echo "commit=$commit" >>"$GITHUB_OUTPUT"
fi
echo "commit=$commit"
