#!/usr/bin/env bash
# Post the verdict as a pull-request comment, or update the one posted before (found by a hidden
# marker), so a pull request has one verdict comment however often it runs.
#
#   scripts/ci/pr-comment.sh VERDICT
#
#   GH_TOKEN (pull-requests: write), GITHUB_REPOSITORY, PR_NUMBER; `gh` on PATH (GitHub's runners have it)
set -euo pipefail
verdict=${1:?usage: $0 VERDICT}
: "${GITHUB_REPOSITORY:?}" "${PR_NUMBER:?}"
if ! [[ $PR_NUMBER =~ ^[0-9]+$ ]]; then
  echo "pr-comment: PR_NUMBER=$PR_NUMBER is not a number" >&2
  exit 2
fi
marker='<!-- llmbench-verdict -->'
body=$(mktemp)
trap 'rm -f "$body"' EXIT
{
  echo "$marker"
  cat "$verdict"
  if [[ -n ${RUN_URL:-} ]]; then
    printf '\n[Workflow run, report and saved runs](%s)\n' "$RUN_URL"
  fi
} >"$body"

existing=$(gh api --paginate "repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments" \
  --jq ".[] | select(.body | startswith(\"$marker\")) | .id" | head -n 1)
if [[ -n $existing ]]; then
  gh api --method PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$existing" -F "body=@$body" >/dev/null
  echo "pr-comment: updated comment $existing"
else
  gh api --method POST "repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments" -F "body=@$body" >/dev/null
  echo "pr-comment: posted a comment on #$PR_NUMBER"
fi
