#!/usr/bin/env bash
# Run shard K of N of the benchmark matrix and save its run (pytest-benchmark JSON) as
# $LLMBENCH_RESULTS/shard-K-of-N.json (default results/).
#
#   scripts/ci/bench-shard.sh K N [pytest arguments...]
#
#   PYTHON           the interpreter with pytest-llmbench installed (default .venv/bin/python)
#   LLMBENCH_ARGS    extra pytest arguments (the workflow's plan), split on spaces
#   LLMBENCH_SUITE   the suite to run (default benchmarks)
#   LLMBENCH_SHARD_COSTS  saved runs that balance the split (read by the plugin; the workflow: the
#                    plan's commit of the history, the same on every shard)
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 K N [pytest arguments...]" >&2
  exit 2
fi
k=$1 n=$2
shift 2
PY=${PYTHON:-.venv/bin/python}
out=${LLMBENCH_RESULTS:-results}
mkdir -p "$out"
run=$out/shard-$k-of-$n.json
read -ra extra <<<"${LLMBENCH_ARGS:-}"

status=0
# A shard with no benchmark (more shards than the matrix can fill) exits 5, no tests ran; pytest-benchmark's
# warning "Not saving anything" would otherwise turn that into a failure under filterwarnings = error.
"$PY" -m pytest "${LLMBENCH_SUITE:-benchmarks}" -p no:cacheprovider -rs \
  -W "ignore:Not saving anything:pytest_benchmark.logger.PytestBenchmarkWarning" \
  "--llmbench-shard=$k/$n" "--benchmark-json=$run" "${extra[@]}" "$@" || status=$?
if [[ $status -eq 5 ]]; then
  echo "bench-shard: shard $k/$n has no tests (more shards than the matrix can fill)"
  status=0
fi
if [[ -f $run ]]; then
  echo "bench-shard: shard $k/$n saved $run"
else
  echo "bench-shard: shard $k/$n saved no run (no benchmark ran)" >&2
fi
exit "$status"
