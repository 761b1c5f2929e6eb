#!/usr/bin/env bash
# Print the latest run (highest NNNN_ number) of a pytest-benchmark file storage, or nothing.
#
#   scripts/ci/latest-run.sh STORAGE_DIR
set -euo pipefail
[[ -d ${1:?usage: $0 STORAGE_DIR} ]] || exit 0
find "$1" -type f -name '[0-9][0-9][0-9][0-9]_*.json' -not -path '*/.git/*' -printf '%f\t%p\n' |
  LC_ALL=C sort | tail -n 1 | cut -f 2
