#!/usr/bin/env bash
# Append RUN to the benchmark history: the `benchmark-data` branch, laid out as a pytest-benchmark
# file storage per runner kind: <KIND>/<machine id>/NNNN_<commit>.json. Only default-branch runs call
# this (pushes and the schedule); pull requests never do.
#
#   scripts/ci/record-history.sh RUN KIND
#
#   LLMBENCH_HISTORY_REMOTE, LLMBENCH_HISTORY_BRANCH, GH_TOKEN: as in fetch-history.sh (the token
#   must be allowed to push: contents: write)
set -euo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: $0 RUN KIND" >&2
  exit 2
fi
run=$(realpath "$1") kind=$2
PY=${PYTHON:-python3}
src=$(realpath "$(dirname "$0")/../../src")
# shellcheck source=scripts/ci/history-remote.sh
source "$(dirname "$0")/history-remote.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# `llmbench runs` from this checkout: the record job installs nothing, and it needs the standard library only.
runs() { PYTHONPATH="$src${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m llmbench.commands.runs "$@"; }
# pytest-benchmark's storage folder name (<system>-<implementation>-<python major.minor>-<bits>bit) and the commit.
machine=$(runs machine-id "$run")
commit=$(runs commit "$run")

for attempt in 1 2 3; do
  rm -rf "$work/data"
  if git "${auth[@]}" ls-remote --exit-code --heads "$remote" "$branch" >/dev/null; then
    git "${auth[@]}" clone --quiet --depth 1 --single-branch --branch "$branch" "$remote" "$work/data"
  else
    git init --quiet -b "$branch" "$work/data"
    git -C "$work/data" remote add origin "$remote"
    printf '# Benchmark history\n\nSaved runs of the default branch (pytest-benchmark JSON), written by\n`scripts/ci/record-history.sh`. Layout: `<runner kind>/<machine id>/NNNN_<commit>.json`.\n' \
      >"$work/data/README.md"
  fi
  last=$(basename "$(runs latest --storage "$work/data/$kind")" | cut -c 1-4)
  number=$(printf '%04d' $((10#${last:-0} + 1)))
  target=$kind/$machine/${number}_${commit:0:12}.json
  mkdir -p "$work/data/$(dirname "$target")"
  cp "$run" "$work/data/$target"
  git -C "$work/data" add -A
  git -C "$work/data" -c user.name="llmbench history" -c user.email="llmbench@users.noreply.github.com" \
    commit --quiet -m "Record $target"
  if git -C "$work/data" "${auth[@]}" push --quiet origin "HEAD:refs/heads/$branch"; then
    echo "record-history: $target on $branch"
    exit 0
  fi
  echo "record-history: push rejected (attempt $attempt), fetching again" >&2
  sleep $((attempt * 5))
done
echo "record-history: could not push to $branch" >&2
exit 1
