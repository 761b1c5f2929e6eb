#!/usr/bin/env bash
# Set up the virtual environment the Makefile uses: torch first (the CPU build where there is no
# CUDA), then the project with everything it needs. Safe to run again: it only installs what changed.
#
#   VENV=.venv            where to create it
#   PYTHON=python3        the interpreter that creates it (3.11 or newer)
#   TORCH_SPEC=...        the torch requirement; default torch==2.13.0 (CPU build) without CUDA,
#                         torch==2.13.0 from PyPI (a CUDA build) where `nvidia-smi` works
#   TORCH_INDEX_URL=...   an index for torch, e.g. https://download.pytorch.org/whl/cpu or .../cu128
#   LLMBENCH_EXTRAS=all   the extras to install (all = bitsandbytes, llama-cpp, report, semantic, history)
set -euo pipefail

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${LLMBENCH_EXTRAS:-all}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

log() { printf 'install: %s\n' "$*" >&2; }

if [[ ! -x $VENV/bin/python ]]; then
  log "creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)

if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    log "nvidia-smi works: installing $TORCH_SPEC with CUDA ${TORCH_INDEX_URL:+from $TORCH_INDEX_URL}"
  else
    log "no CUDA found: installing $TORCH_SPEC (CPU build) ${TORCH_INDEX_URL:+from $TORCH_INDEX_URL}"
  fi
  "${PIP[@]}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC"
fi

# llama-cpp-python builds from source (about 5 minutes on 2 cores). GGML_NATIVE=OFF: a build for
# the build machine's own CPU segfaults on the first decode on CPUs with AMX.
if [[ $EXTRAS == *all* || $EXTRAS == *llama* ]] && ! "$VENV/bin/python" -c 'import llama_cpp' 2>/dev/null; then
  log "building llama-cpp-python from source (about 5 minutes on 2 cores)"
fi
export CMAKE_ARGS=${CMAKE_ARGS:--DGGML_NATIVE=OFF}
log "installing pytest-llmbench[$EXTRAS,dev]"
"${PIP[@]}" -e ".[$EXTRAS,dev]"
log "ready: $VENV"
