#!/usr/bin/env bash
# The adapter to pytest-benchmark (src/llmbench/benchmark_storage.py) against one pytest-benchmark
# release: its tests, the gate's and the plain-project ones (docs/gate.md, "Plain pytest-benchmark
# benchmarks"). RELEASE is `pinned` (what `make install` installed) or `newest` (the newest on PyPI,
# installed over it; then pytest-benchmark's own suite runs with and without the plugin too).
#
#   scripts/ci/pytest-benchmark-adapter.sh RELEASE
#
#   PYTHON   the interpreter with pytest-llmbench installed (default .venv/bin/python)
set -euo pipefail
release=${1:?usage: $0 pinned|newest}
PY=${PYTHON:-.venv/bin/python}
case $release in
  pinned) ;;
  newest) "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pytest-benchmark ;;
  *)
    echo "pytest-benchmark-adapter: $release is not pinned or newest" >&2
    exit 2
    ;;
esac
echo "pytest-benchmark-adapter: pytest-benchmark $("$PY" -c 'from importlib.metadata import version; print(version("pytest-benchmark"))') ($release)"
"$PY" -m pytest tests/test_runs.py tests/plugin/test_good_neighbour.py tests/gate/test_gate.py tests/plugin/test_interrupted.py -p no:cacheprovider -q
if [[ $release == newest ]]; then
  PYTHON=$PY "$(dirname "$0")/pytest-benchmark-suite.sh"
fi
