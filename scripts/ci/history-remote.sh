#!/usr/bin/env bash
# Sourced by fetch-history.sh and record-history.sh: where the benchmark history lives and how to
# authenticate to it. Sets `remote`, `branch` and `auth` (extra git arguments).
#
#   LLMBENCH_HISTORY_REMOTE   the repository (default: this GitHub repository)
#   LLMBENCH_HISTORY_BRANCH   the branch (default benchmark-data)
#   GH_TOKEN                  a token for https remotes (private repositories, or pushing)
remote=${LLMBENCH_HISTORY_REMOTE:-${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY:?set GITHUB_REPOSITORY or LLMBENCH_HISTORY_REMOTE}.git}
branch=${LLMBENCH_HISTORY_BRANCH:-benchmark-data}
auth=()
if [[ -n ${GH_TOKEN:-} && $remote == https://* ]]; then
  basic=$(printf 'x-access-token:%s' "$GH_TOKEN" | base64 -w0)
  echo "::add-mask::$basic"
  auth=(-c "http.extraheader=AUTHORIZATION: basic $basic")
fi
