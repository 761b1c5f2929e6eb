#!/usr/bin/env bash
# Set up the virtual environment the Makefile uses: torch first (the CPU build where there is no
# CUDA), then the project with everything it needs. Safe to run again: it only installs what changed.
# docs/installation.md explains each choice; docs/options.md lists the variables.
#
#   VENV=.venv            where to create it
#   PYTHON=python3        the interpreter that creates it (3.11 or newer)
#   TORCH_SPEC=...        the torch requirement (default torch==2.13.0)
#   TORCH_INDEX_URL=...   the index for torch. Default: where `nvidia-smi` works, pip's default index
#                         (PyPI: a CUDA build); elsewhere, unless TORCH_SPEC is given, PyTorch's CPU
#                         wheel index, or pip's default index with a message when that is unreachable
#   LLMBENCH_TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu   that CPU index (a mirror, a test)
#   LLMBENCH_EXTRAS=all   the extras to install (all = bitsandbytes, llama-cpp, report, semantic, history,
#                         cuda)
#   CMAKE_ARGS=...        llama.cpp build flags, added after -DGGML_NATIVE=OFF; one that names
#                         GGML_NATIVE itself replaces it
#   LLMBENCH_INSTALL_DRY_RUN=1   print the decisions and the commands (stdout), install nothing
set -euo pipefail

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${LLMBENCH_EXTRAS:-all}
CPU_INDEX=${LLMBENCH_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
DRY_RUN=${LLMBENCH_INSTALL_DRY_RUN:-}
# Seconds the CPU index may take to answer before pip's default index is used instead.
PROBE_TIMEOUT_S=5

log() { printf 'install: %s\n' "$*" >&2; }

# Runs a command, or in a dry run prints it (shell-quoted, one line, "run: " first) and runs nothing.
run() {
  if [[ -n $DRY_RUN ]]; then
    printf 'run:'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# Exit status 0 when $1 (a pip "simple" index) serves a torch page within PROBE_TIMEOUT_S seconds;
# otherwise prints why not. Honours the proxy variables and PIP_CERT, as pip does.
index_serves_torch() {
  "$PYTHON" - "$1" "$PROBE_TIMEOUT_S" <<'EOF'
import os, ssl, sys, urllib.request

url, timeout = sys.argv[1].rstrip("/") + "/torch/", float(sys.argv[2])
context = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
try:
    with urllib.request.urlopen(url, timeout=timeout, context=context) as answer:
        answer.read(1)
except Exception as error:  # any failure means: do not use this index
    print(f"{url}: {error}")
    sys.exit(1)
EOF
}

# Where torch comes from: sets TORCH_SPEC and TORCH_INDEX_URL (empty: pip's default index).
choose_torch() {
  local spec_given=${TORCH_SPEC:+yes} why
  TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
  if [[ -n ${TORCH_INDEX_URL:-} ]]; then
    log "installing $TORCH_SPEC from TORCH_INDEX_URL=$TORCH_INDEX_URL"
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    TORCH_INDEX_URL=
    log "nvidia-smi works: installing $TORCH_SPEC from pip's default index (a CUDA build)"
  elif [[ -n $spec_given ]]; then
    TORCH_INDEX_URL=
    log "no CUDA found: installing TORCH_SPEC=$TORCH_SPEC from pip's default index" \
      "(set TORCH_INDEX_URL=$CPU_INDEX too for the CPU build)"
  elif why=$(index_serves_torch "$CPU_INDEX"); then
    TORCH_INDEX_URL=$CPU_INDEX
    log "no CUDA found: installing $TORCH_SPEC (CPU build) from $CPU_INDEX"
  else
    TORCH_INDEX_URL=
    log "no CUDA found, and PyTorch's CPU wheel index is unreachable ($why)."
    log "installing $TORCH_SPEC from pip's default index instead, which on Linux x86_64 (PyPI)" \
      "is the CUDA build (several GB). For the CPU build, set TORCH_INDEX_URL (or" \
      "LLMBENCH_TORCH_CPU_INDEX) to a CPU wheel index this machine reaches, and run again."
  fi
}

# llama.cpp's build flags: GGML_NATIVE=OFF, because a build for the build machine's own CPU segfaults
# on the first decode on CPUs with AMX; the user's flags go after it, and theirs win where they name
# GGML_NATIVE themselves.
choose_cmake_args() {
  local given=${CMAKE_ARGS:-}
  if [[ -z $given ]]; then
    CMAKE_ARGS=-DGGML_NATIVE=OFF
  elif [[ $given == *GGML_NATIVE* ]]; then
    CMAKE_ARGS=$given
    log "CMAKE_ARGS names GGML_NATIVE: using it as given ($given)"
  else
    CMAKE_ARGS="-DGGML_NATIVE=OFF $given"
  fi
}

[[ -n $DRY_RUN ]] && log "dry run (LLMBENCH_INSTALL_DRY_RUN=$DRY_RUN): nothing is installed"

if [[ ! -x $VENV/bin/python ]]; then
  log "creating $VENV with $($PYTHON --version 2>&1)"
  run "$PYTHON" -m venv "$VENV"
  run "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)

if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  log "torch is installed: keeping it"
else
  choose_torch
  run "${PIP[@]}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC"
fi

choose_cmake_args
if [[ $EXTRAS == *all* || $EXTRAS == *llama* ]] \
  && ! { [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import llama_cpp' 2>/dev/null; }; then
  log "building llama-cpp-python from source with CMAKE_ARGS=$CMAKE_ARGS (about 5 minutes on 2 cores)"
fi
log "installing pytest-llmbench[$EXTRAS,dev]"
run env CMAKE_ARGS="$CMAKE_ARGS" "${PIP[@]}" -e ".[$EXTRAS,dev]"
if [[ -n $DRY_RUN ]]; then log "dry run done: nothing was installed"; else log "ready: $VENV"; fi
