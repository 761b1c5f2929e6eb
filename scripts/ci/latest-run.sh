#!/usr/bin/env bash
# Print the latest run (highest NNNN_ number) of a pytest-benchmark file storage, or nothing
# (`llmbench runs latest`: every machine's folder of it).
#
#   scripts/ci/latest-run.sh STORAGE_DIR
#
#   LLMBENCH   the llmbench command (default .venv/bin/llmbench)
set -euo pipefail
storage=${1:?usage: $0 STORAGE_DIR}
"${LLMBENCH:-.venv/bin/llmbench}" runs latest --storage "$storage"
