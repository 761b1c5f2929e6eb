#!/usr/bin/env bash
# pytest-benchmark's own test suite with and without this plugin: the outcomes must be the same (a
# plain pytest-benchmark project notices nothing of pytest-llmbench; docs/gate.md).
#
# Downloads the source distribution of the pytest-benchmark installed in the project's environment
# (or PYTEST_BENCHMARK_VERSION), installs it with its test requirements (its tox.ini's extras and deps
# and its dev group) into a throwaway virtual environment, and runs its suite as tox.ini does
# (pytest -vv --ignore=src, PYTHONPATH=tests, COLUMNS=80) twice: alone, then with the project's
# environment (pytest-llmbench and everything it needs) added to the throwaway one by a .pth file.
# Exits 1 when a test's outcome differs, naming it.
#
#   scripts/ci/pytest-benchmark-suite.sh
#
#   PYTHON                    the project's interpreter (default .venv/bin/python)
#   PYTEST_BENCHMARK_VERSION  the pytest-benchmark release whose suite runs (default: the installed one)
#   LLMBENCH_NEIGHBOUR_DIR    where to work (default: a temporary folder, removed at the end)
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY") # absolute, the venv's own (no symlink resolved)
installed=$("$PY" -c 'from importlib.metadata import version; print(version("pytest-benchmark"))')
version=${PYTEST_BENCHMARK_VERSION:-$installed}
pytest_version=$("$PY" -c 'from importlib.metadata import version; print(version("pytest"))')
site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [[ -n ${LLMBENCH_NEIGHBOUR_DIR:-} ]]; then
  work=$LLMBENCH_NEIGHBOUR_DIR
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
log() { printf 'pytest-benchmark-suite: %s\n' "$*" >&2; }

log "pytest-benchmark $version (installed: $installed), pytest $pytest_version, in $work"
"$PY" -m pip download --quiet --disable-pip-version-check --no-binary :all: --no-deps \
  "pytest-benchmark==$version" -d "$work/sdist"
rm -rf "$work/src"
mkdir -p "$work/src"
tar -xzf "$work"/sdist/pytest_benchmark-"$version".tar.gz -C "$work/src" --strip-components 1

# The throwaway environment: the base interpreter of the project's (a venv made from a venv uses it).
if [[ ! -x $work/venv/bin/python ]]; then
  "$PY" -m venv "$work/venv"
fi
venv_site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -f "$venv_site/llmbench-project.pth"
# tox.ini: the package (a wheel) with extras aspect, elasticsearch, histogram; deps pygal, pygaljs,
# setuptools; the dev dependency group (freezegun, nbmake). The project's pytest, so that only the plugin differs.
dev=$("$work/venv/bin/python" - "$work/src/pyproject.toml" <<'PYTHON'
import sys, tomllib
print(" ".join(tomllib.load(open(sys.argv[1], "rb")).get("dependency-groups", {}).get("dev", [])))
PYTHON
)
read -ra dev_requirements <<<"$dev"
# The project's other pytest plugins (pytest11 entry points: pytest-xdist, hypothesis, anyio...) at their
# versions: the run with the plugin sees the project's whole environment, so a plugin only there would
# change outcomes of its own (pytest-benchmark's xdist tests skip without pytest-xdist), not this one's.
plugins=$("$PY" - <<'PYTHON'
import importlib.metadata as metadata
own = {"pytest-llmbench", "pytest-benchmark", "pytest"}
found = {
    f"{d.metadata['Name']}=={d.version}"
    for d in metadata.distributions()
    if d.metadata["Name"] and d.metadata["Name"].lower() not in own
    and any(e.group == "pytest11" for e in d.entry_points)
}
print(" ".join(sorted(found)))
PYTHON
)
read -ra other_plugins <<<"$plugins"
log "the project's other pytest plugins, in both runs: ${plugins:-none}"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "$work/src[aspect,elasticsearch,histogram]" "pytest==$pytest_version" pygal==3.1.3 pygaljs==1.0.2 \
  "setuptools>=80" "${dev_requirements[@]}" "${other_plugins[@]}"

run_suite() { # NAME: run the suite, write NAME.xml (JUnit) and NAME.log
  local name=$1 status=0
  # As tox runs it: the environment's bin first on PATH (the suite runs its py.test-benchmark command).
  (cd "$work/src" && PATH="$work/venv/bin:$PATH" COLUMNS=80 PYTHONPATH="$work/src/tests" PYTHONUNBUFFERED=yes \
    "$work/venv/bin/python" -m pytest -vv --ignore=src -p no:cacheprovider --junitxml="$work/$name.xml") \
    >"$work/$name.log" 2>&1 || status=$?
  log "$name: $(tail -n 1 "$work/$name.log") (exit status $status)"
}
start=$SECONDS
run_suite without
# The project's environment after the throwaway one's own packages (its .pth files too: the editable
# install of pytest-llmbench): the plugin's entry point is found, in pytest's subprocesses too.
printf 'import site; site.addsitedir(%s)\n' "'$site'" >"$venv_site/llmbench-project.pth"
"$work/venv/bin/python" -c 'import llmbench.plugin' ||
  { log "the plugin does not import in the throwaway environment"; exit 2; }
run_suite with
rm -f "$venv_site/llmbench-project.pth"
log "both runs took $((SECONDS - start)) s"

"$work/venv/bin/python" - "$work/without.xml" "$work/with.xml" <<'PYTHON'
import sys
import xml.etree.ElementTree as ET

def outcomes(path):
    found = {}
    for case in ET.parse(path).iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        found[name] = kinds[0] if kinds else "passed"
    return found

without, with_plugin = outcomes(sys.argv[1]), outcomes(sys.argv[2])
differ = sorted(
    (name, without.get(name, "absent"), with_plugin.get(name, "absent"))
    for name in without.keys() | with_plugin.keys()
    if without.get(name) != with_plugin.get(name)
)
print(f"pytest-benchmark-suite: {len(without)} tests; {len(differ)} with another outcome with pytest-llmbench")
for name, before, after in differ:
    print(f"  {name}: {before} without, {after} with pytest-llmbench")
sys.exit(1 if differ else 0)
PYTHON
