#!/usr/bin/env bash
# Merge the saved runs of every shard (any *.json under DIR) into one run.
#
#   scripts/ci/merge.sh DIR OUTPUT
#
#   LLMBENCH_MERGE_NAME   which files under DIR (a find -name pattern; default *.json). Pull requests
#                         merge the head sides of the shards' paired runs (*_ab-*-head.json).
set -euo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: $0 SHARDS_DIR OUTPUT" >&2
  exit 2
fi
LLMBENCH=${LLMBENCH:-.venv/bin/llmbench}
mapfile -t runs < <(find "$1" -type f -name "${LLMBENCH_MERGE_NAME:-*.json}" | LC_ALL=C sort)
if [[ ${#runs[@]} -eq 0 ]]; then
  echo "merge: no shard runs under $1" >&2
  exit 2
fi
"$LLMBENCH" merge "${runs[@]}" -o "$2"
