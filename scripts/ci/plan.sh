#!/usr/bin/env bash
# Plan the benchmark workflow: which runners, how many shards, which matrix arguments.
# Writes runner=<JSON labels>, shards=<JSON list>, count=N and args=<pytest args> to $GITHUB_OUTPUT
# (or stdout when it is not set).
#
#   LLMBENCH_RUNNER   "cpu" (default: ubuntu-latest, the CPU default matrix), "gpu" (self-hosted
#                     runners labelled [self-hosted, linux, gpu], the matrix file's devices), or a
#                     JSON list of runner labels of your own (then the matrix file's devices)
#   LLMBENCH_SHARDS   how many shards (runners) the matrix is split over; default 2 on cpu, 1 on gpu
#   LLMBENCH_ARGS     extra pytest arguments for every shard (e.g. --llmbench-precision=bf16,q4_k_m)
set -euo pipefail

torch_index=
runner=${LLMBENCH_RUNNER:-cpu}
case $runner in
  cpu | "")
    labels='["ubuntu-latest"]'
    # Hosted runners have no GPU: run the CPU column of the matrix only (CUDA rows would all skip).
    args="--llmbench-device=cpu ${LLMBENCH_ARGS:-}"
    default_shards=2
    torch_index=https://download.pytorch.org/whl/cpu
    ;;
  gpu)
    labels='["self-hosted", "linux", "gpu"]'
    args=${LLMBENCH_ARGS:-}
    default_shards=1
    ;;
  \[*)
    labels=$runner
    args=${LLMBENCH_ARGS:-}
    default_shards=1
    ;;
  *)
    echo "plan: LLMBENCH_RUNNER=$runner is not cpu, gpu or a JSON list of runner labels" >&2
    exit 2
    ;;
esac
shards=${LLMBENCH_SHARDS:-$default_shards}
if ! [[ $shards =~ ^[1-9][0-9]?$ ]]; then
  echo "plan: LLMBENCH_SHARDS=$shards is not a number of shards from 1 to 99" >&2
  exit 2
fi
list=$(seq -s, 1 "$shards")
kind=$(printf '%s' "$runner" | tr -cs 'A-Za-z0-9._' '-' | sed 's/^-*//; s/-*$//')
plan() {
  echo "runner=$labels"
  echo "shards=[$list]"
  echo "count=$shards"
  echo "args=${args% }"
  echo "kind=${kind:-cpu}"
  echo "torch-index=${torch_index:-}"
}
if [[ -n ${GITHUB_OUTPUT:-} ]]; then
  plan >>"$GITHUB_OUTPUT"
fi
plan
