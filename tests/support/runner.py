"""A stand-in for GitHub Actions' runner: a workflow's jobs run here in the order and environment it gives them.

:class:`Runner` runs one job of a workflow file (``.github/workflows/*.yml``) as a hosted runner would:

- **a fresh clone** per job: ``actions/checkout`` fetches the commit (``ref``, else the event's sha) from the
  repository ``$GITHUB_SERVER_URL/$GITHUB_REPOSITORY.git`` (a local bare repository here) into a new
  workspace, one commit deep unless ``fetch-depth: 0``;
- **the job's own Python**: ``make install`` is not run (one environment serves every job, this one); it
  links the workspace's ``.venv`` to it, puts the checkout's ``src`` on ``PYTHONPATH`` (what an editable
  install of the checkout gives) and records the extras the job installs (``LLMBENCH_EXTRAS``, ``all``
  where unset, as ``scripts/install.sh`` reads it). Every step's Python then sees only those: a
  ``sitecustomize`` on ``PYTHONPATH`` (:func:`write_only_installed`) hides the packages that only other
  extras bring (their imports fail, their metadata is gone). A job that installs nothing sees no
  third-party package at all;
- **a machine of one core** per job: its steps run on one of this process's CPUs, the jobs in turn;
- ``run:`` steps as ``bash --noprofile --norc -eo pipefail``, with the job's and the step's ``env:``
  evaluated, ``$GITHUB_OUTPUT`` and ``$GITHUB_STEP_SUMMARY`` files per step (the job summary is their
  concatenation), ``if:`` conditions with the status functions (no ``if:`` is ``success()``), and the
  ``steps`` context for the steps after;
- **artifacts** as ``actions/upload-artifact`` and ``actions/download-artifact`` hand them over: only the
  uploaded paths, relative to the least common ancestor of the search paths, hidden files left out, nothing
  uploaded where nothing matched; downloaded by name into ``path``, or by pattern each into
  ``path/<name>/``;
- ``actions/setup-python`` and ``actions/cache`` do nothing here (the cache step says the key it would use).

A job that never ran its steps (a runner that was lost, a cancelled job) is ``Runner.run_job(..., lost=True)``.
:data:`FAKE_GH` is a stand-in for ``gh api`` over a JSON file of comments. This module holds no tests.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from packaging.requirements import Requirement

from tests.support.git_repos import IDENTITY

__all__ = [
    "FAKE_GH",
    "JobResult",
    "Runner",
    "StepResult",
    "evaluate",
    "interpolate",
    "load_workflow",
    "only_installed",
    "write_only_installed",
]

PROJECT = "pytest-llmbench"


def load_workflow(path: Path) -> dict[Any, Any]:
    """The workflow file as data (YAML 1.1 reads the key ``on`` as True: it is ``on`` again)."""
    data: dict[Any, Any] = yaml.safe_load(path.read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


# ----------------------------------------------------------------------------- expressions

EXPRESSION_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>\d+(?:\.\d+)?\b)|(?P<op>&&|\|\||==|!=|[(),!])|(?P<name>[\w.*-]+))"
)
#: The status functions' state: ``success()`` (no earlier step or needed job failed) and ``failure()``.
STATUS = "__status__"
#: The job's workspace, for ``hashFiles()``.
WORKSPACE = "__workspace__"


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate the subset of GitHub's expression syntax the workflows use.

    Property paths (a missing property is null; ``a.*.b`` is the list of each element's ``b``), string and
    number literals, ``true`` / ``false`` / ``null``, ``format()``, ``fromJSON()``, ``toJSON()``,
    ``contains()``, ``hashFiles()`` (in ``context["__workspace__"]``), ``!``, ``==`` / ``!=``
    (case-insensitive on strings), ``&&`` / ``||`` (which return an operand, as in JavaScript) and the
    status functions: ``cancelled()`` is false (nobody cancels here),
    ``always()`` true, ``success()`` and ``failure()`` from ``context["__status__"]`` (success where absent).
    A ``${{ }}`` wrapper is dropped.
    """
    expression = expression.strip().removeprefix("${{").removesuffix("}}")
    tokens = [(m.lastgroup, m.group(m.lastgroup or "")) for m in EXPRESSION_TOKEN.finditer(expression.strip())]
    assert "".join(value for _, value in tokens) == re.sub(r"\s+", "", expression), expression
    position = 0
    status = context.get(STATUS, {"success": True, "failure": False})

    def peek() -> str | None:
        return tokens[position][1] if position < len(tokens) else None

    def take() -> tuple[str | None, str]:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def call(name: str) -> Any:
        assert take()[1] == "("
        args = []
        if peek() != ")":
            args.append(disjunction())
            while peek() == ",":
                take()
                args.append(disjunction())
        assert take()[1] == ")"
        if name == "format":
            return re.sub(r"\{(\d+)\}", lambda m: text(args[1 + int(m.group(1))]), args[0])
        if name == "fromJSON":
            return json.loads(args[0])
        if name == "toJSON":
            return json.dumps(args[0], indent=2)
        if name == "contains":
            haystack, needle = args
            if isinstance(haystack, list):
                return any(str(item).lower() == str(needle).lower() for item in haystack)
            return str(needle).lower() in str(haystack or "").lower()
        if name == "hashFiles":  # the workspace's files that match, hashed; none: an empty string
            workspace = Path(context.get(WORKSPACE, "."))
            files = sorted({path for pattern in args for path in workspace.glob(pattern) if path.is_file()})
            digests = b"".join(hashlib.sha256(path.read_bytes()).digest() for path in files)
            return hashlib.sha256(digests).hexdigest() if files else ""
        statuses = {"cancelled": False, "always": True, "success": status["success"], "failure": status["failure"]}
        assert name in statuses, name
        assert not args, name
        return statuses[name]

    def primary() -> Any:
        kind, value = take()
        if kind == "string":
            return value[1:-1].replace("''", "'")
        if kind == "number":
            return float(value) if "." in value else int(value)
        if value == "(":
            result = disjunction()
            assert take()[1] == ")"
            return result
        if value == "!":
            return not primary()
        if value in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[value]
        if peek() == "(":
            return call(value)
        nodes: list[Any] = [context]
        many = False
        for part in value.split("."):
            if part == "*":
                many = True
                nodes = [item for node in nodes if isinstance(node, list | Mapping) for item in
                         (node if isinstance(node, list) else node.values())]  # fmt: skip
                continue
            nodes = [node.get(part) if isinstance(node, Mapping) else None for node in nodes]
        return nodes if many else nodes[0]

    def comparison() -> Any:
        left = primary()
        while peek() in ("==", "!="):
            op = take()[1]
            right = primary()
            same = str(left).lower() == str(right).lower() if isinstance(left, str) else left == right
            left = same if op == "==" else not same
        return left

    def conjunction() -> Any:
        left = comparison()
        while peek() == "&&":
            take()
            right = comparison()
            left = right if left else left
        return left

    def disjunction() -> Any:
        left = conjunction()
        while peek() == "||":
            take()
            right = conjunction()
            left = left if left else right
        return left

    result = disjunction()
    assert position == len(tokens), expression
    return result


def text(value: Any) -> str:
    """An expression's value where a string is needed: ``true``/``false``, empty for null, JSON for objects."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def interpolate(template: Any, context: Mapping[str, Any]) -> Any:
    """``template`` with each ``${{ }}`` evaluated; a value that is one expression alone keeps its type."""
    if not isinstance(template, str):
        return template
    whole = re.fullmatch(r"\$\{\{(.*?)\}\}", template.strip(), re.S)
    if whole and "${{" not in whole.group(1):
        return evaluate(whole.group(1), context)
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: text(evaluate(m.group(1), context)), template, flags=re.S)


def condition(expression: str | None, context: Mapping[str, Any]) -> bool:
    """An ``if:``: without a status function it is ``success() && (...)``; no ``if:`` is ``success()``."""
    if expression is None:
        expression = "success()"
    elif not re.search(r"\b(success|failure|cancelled|always)\(\)", str(expression)):
        expression = f"success() && ({str(expression).strip().removeprefix('${{').removesuffix('}}')})"
    return bool(evaluate(str(expression), context))


# ----------------------------------------------------------------------------- what a job installs


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_by(extras: Sequence[str]) -> set[str]:
    """The distributions (normalized names) that installing this project with ``extras`` brings: its
    requirements and theirs, markers evaluated here."""
    seen: dict[str, frozenset[str]] = {}
    todo: list[tuple[str, frozenset[str]]] = [(PROJECT, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        key = _normalized(name)
        if key in seen and wanted <= seen[key]:
            continue
        seen[key] = seen.get(key, frozenset()) | wanted
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here: nothing to hide either
        for line in requirements:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in sorted(seen[key])] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return set(seen)


@functools.cache
def only_installed(extras: tuple[str, ...] | None) -> tuple[frozenset[str], frozenset[str]]:
    """What a job that installs this project with ``extras`` (and ``dev``, as ``scripts/install.sh`` does;
    None: a job that installs nothing) must not see of this environment: (distributions, top-level modules).

    Hidden: what only the project's other extras bring (with None, everything the project brings, the
    project itself aside, whose checkout is there). Packages the project does not bring stay visible."""
    everything = installed_by([*_extras_of_project(), "dev"])
    kept = {_normalized(PROJECT)} if extras is None else installed_by([*extras, "dev"])
    hidden = everything - kept
    modules = {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if all(_normalized(d) in hidden for d in dists) and module not in sys.stdlib_module_names
    }
    return frozenset(hidden), frozenset(modules)


def _extras_of_project() -> list[str]:
    return list(importlib.metadata.metadata(PROJECT).get_all("Provides-Extra") or [])


SITECUSTOMIZE = '''"""Written by tests/support/runner.py: the {job} job's Python sees only what that job installs."""
import importlib.machinery
import re
import sys

_HIDDEN_MODULES = frozenset({modules!r})
_HIDDEN_DISTRIBUTIONS = frozenset({dists!r})


class _OnlyInstalled(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname.partition(".")[0] in _HIDDEN_MODULES:
            return None
        return super().find_spec(fullname, path, target)

    @classmethod
    def find_distributions(cls, *args, **kwargs):
        for dist in super().find_distributions(*args, **kwargs):
            if re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower() not in _HIDDEN_DISTRIBUTIONS:
                yield dist


sys.meta_path[:] = [_OnlyInstalled if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
'''


def write_only_installed(folder: Path, job: str, extras: Sequence[str] | None) -> None:
    """``folder/sitecustomize.py``, which hides from a Python with ``folder`` on ``PYTHONPATH`` what a job
    that installs ``extras`` (None: nothing) would not have (:func:`only_installed`)."""
    dists, modules = only_installed(None if extras is None else tuple(extras))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        SITECUSTOMIZE.format(job=job, modules=sorted(modules), dists=sorted(dists))
    )


# ----------------------------------------------------------------------------- artifacts


def _search_path(pattern: str) -> str:
    """The path before the first segment with a wildcard (``@actions/glob``'s search path)."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else "."


def upload(store: Path, name: str, workspace: Path, paths: str, if_no_files_found: str = "warn") -> list[str]:
    """``actions/upload-artifact``: the files ``paths`` (one pattern a line) match, relative to the least
    common ancestor of the search paths (the parent of a single file), hidden files left out. Returns the
    artifact's files; none matched: no artifact (``if-no-files-found: error`` raises)."""
    patterns = [line.strip() for line in paths.splitlines() if line.strip()]
    files: set[Path] = set()
    for pattern in patterns:
        for match in workspace.glob(pattern.rstrip("/")):
            found = [p for p in match.rglob("*") if p.is_file()] if match.is_dir() else [match]
            files.update(p for p in found if not any(part.startswith(".") for part in p.relative_to(workspace).parts))
    if not files:
        if if_no_files_found == "error":
            raise FileNotFoundError(f"upload-artifact {name}: no files were found with the provided path: {paths}")
        return []
    searches = sorted({_search_path(p) for p in patterns})
    searches = [s for s in searches if not any(s != o and Path(s).is_relative_to(o) for o in searches if o != ".")]
    if len(searches) == 1:
        only = workspace / searches[0]
        root = only.parent if only.is_file() else only
    else:
        root = workspace / os.path.commonpath(searches)
    target = store / name
    assert not target.exists(), f"an artifact named {name} exists already in this run"
    for path in files:
        destination = target / path.relative_to(root)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
    return sorted(str(p.relative_to(root)) for p in files)


def download(store: Path, workspace: Path, path: str, name: str | None = None, pattern: str | None = None) -> None:
    """``actions/download-artifact``: by ``name`` into ``path`` (a missing one fails), or each artifact whose
    name matches ``pattern`` into ``path/<name>/`` (no merge-multiple)."""
    destination = workspace / path
    if name is not None:
        source = store / name
        if not source.is_dir():
            raise FileNotFoundError(f"download-artifact: Artifact not found for name: {name}")
        shutil.copytree(source, destination, dirs_exist_ok=True)
        return
    assert pattern is not None
    for source in sorted(store.glob(pattern)):
        shutil.copytree(source, destination / source.name, dirs_exist_ok=True)


# ----------------------------------------------------------------------------- jobs


@dataclass
class StepResult:
    """One step as the runner ran it: its name (or action), id, outcome and what it printed."""

    name: str
    id: str | None
    outcome: str  # success | failure | skipped
    output: str = ""
    returncode: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    #: Wall-clock seconds it took (for the test's durations, never asserted).
    seconds: float = 0.0


@dataclass
class JobResult:
    """A job's result (``success``, ``failure``, ``skipped``), outputs, steps and job summary."""

    name: str
    result: str
    outputs: dict[str, str] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    summary: str = ""
    workspace: Path | None = None

    def step(self, name: str) -> StepResult:
        """The step named (or with the id) ``name``."""
        found = [s for s in self.steps if name in (s.name, s.id)]
        assert len(found) == 1, f"{self.name}: no single step {name!r} in {[s.name for s in self.steps]}"
        return found[0]

    def outcomes(self) -> dict[str, str]:
        """Each step's name and outcome, in order."""
        return {s.name: s.outcome for s in self.steps}


def needs_context(results: Mapping[str, Sequence[JobResult]]) -> dict[str, Any]:
    """The ``needs`` context of finished jobs (a matrix job's instances: failure if any failed)."""
    context = {}
    for name, instances in results.items():
        states = {job.result for job in instances}
        result = "failure" if "failure" in states else "success" if "success" in states else "skipped"
        outputs: dict[str, str] = {}
        for job in instances:
            outputs.update(job.outputs)
        context[name] = {"result": result, "outputs": outputs}
    return context


class Runner:
    """Runs a workflow's jobs here, one fresh workspace each, as GitHub's hosted runner would (module docstring).

    ``root``: where workspaces, artifacts and the runner's files go. ``env``: the runner's own environment
    (PATH, HOME, ...), to which each job adds the ``GITHUB_*`` variables, its ``env:`` and its steps'.
    ``server``: the folder standing for ``$GITHUB_SERVER_URL`` (``server/OWNER/REPO.git`` is the repository).
    """

    def __init__(self, workflow: Path, root: Path, server: Path, repository: str, env: Mapping[str, str],
                 venv: Path = Path(sys.prefix)) -> None:  # fmt: skip
        self.workflow = load_workflow(workflow)
        self.root = root
        self.server = server
        self.repository = repository
        self.env = dict(env)
        self.venv = venv
        self._jobs = itertools.count(1)  # next() is atomic: shards start from threads
        #: Each job's runner is a machine of one core: the next of this process's CPUs, in turn (llama.cpp
        #: and torch then run one thread, as on a shared machine they should).
        self.cpus = sorted(os.sched_getaffinity(0))

    def artifacts(self, run_id: str) -> Path:
        return self.root / "artifacts" / run_id

    def matrix(self, job: str, context: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The job's matrix instances (``strategy.matrix``, one axis or none)."""
        axes = self.workflow["jobs"][job].get("strategy", {}).get("matrix")
        if not axes:
            return [{}]
        ((axis, values),) = axes.items()
        return [{axis: value} for value in interpolate(values, context)]

    def run_job(self, job: str, github: Mapping[str, Any], needs: Mapping[str, Sequence[JobResult]],
                vars: Mapping[str, str] | None = None, matrix: Mapping[str, Any] | None = None,
                lost: bool = False) -> JobResult:  # fmt: skip
        """Run ``job`` for the event ``github`` (the ``github`` context) after the ``needs`` jobs.

        ``lost``: the job's runner was lost before any step (it fails, uploading nothing)."""
        spec = self.workflow["jobs"][job]
        context: dict[str, Any] = {
            "github": github, "needs": needs_context(needs), "vars": dict(vars or {}), "matrix": dict(matrix or {}),
            "inputs": github.get("event", {}).get("inputs", {}), "runner": {"os": "Linux", "temp": str(self.root)},
        }  # fmt: skip
        needed = [spec["needs"]] if isinstance(spec.get("needs"), str) else spec.get("needs", [])
        all_needed = all(context["needs"][name]["result"] == "success" for name in needed)
        context[STATUS] = {"success": all_needed, "failure": not all_needed}
        if not condition(spec.get("if"), context):
            return JobResult(job, "skipped")
        if lost:
            return JobResult(job, "failure")
        number = next(self._jobs)
        cpu = self.cpus[number % len(self.cpus)]
        home = self.root / "runners" / f"{number:02d}-{job}"
        workspace = home / "work" / self.repository.split("/")[1] / self.repository.split("/")[1]
        workspace.mkdir(parents=True)
        context[WORKSPACE] = str(workspace)
        python_dir = home / "python"
        write_only_installed(python_dir, job, None)  # nothing installed yet
        job_env = {key: text(interpolate(value, context)) for key, value in spec.get("env", {}).items()}
        base_env = {
            **self.env, "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_REPOSITORY": self.repository, "GITHUB_SERVER_URL": f"file://{self.server}",
            "GITHUB_EVENT_NAME": github["event_name"], "GITHUB_REF": github["ref"], "GITHUB_SHA": github["sha"],
            "GITHUB_RUN_ID": str(github["run_id"]), "GITHUB_JOB": job, "RUNNER_TEMP": str(home / "temp"),
            "PYTHONPATH": str(python_dir),
        }  # fmt: skip
        (home / "temp").mkdir()
        env = {**base_env, **job_env}
        result = JobResult(job, "success", workspace=workspace)
        steps: dict[str, Any] = {}
        for index, step in enumerate(spec["steps"]):
            context["steps"] = steps
            failed = any(s.outcome == "failure" for s in result.steps)
            context[STATUS] = {"success": not failed, "failure": failed}
            name = step.get("name") or step.get("uses", "").split("@")[0] or step["run"]
            started = time.perf_counter()
            if not condition(step.get("if"), context):
                outcome = StepResult(name, step.get("id"), "skipped")
            elif "run" in step:
                outcome = self._run(step, name, index, context, env, workspace, home, result, cpu)
            else:
                outcome = self._action(step, name, context, workspace, str(github["run_id"]))
            outcome.seconds = time.perf_counter() - started
            result.steps.append(outcome)
            if step.get("id"):
                steps[step["id"]] = {"outcome": outcome.outcome, "conclusion": outcome.outcome,
                                     "outputs": outcome.outputs}  # fmt: skip
        context["steps"] = steps
        if any(s.outcome == "failure" for s in result.steps):
            result.result = "failure"
        result.outputs = {key: text(interpolate(value, context)) for key, value in spec.get("outputs", {}).items()}
        return result

    def _run(self, step: Mapping[str, Any], name: str, index: int, context: Mapping[str, Any],
             env: dict[str, str], workspace: Path, home: Path, job: JobResult, cpu: int) -> StepResult:  # fmt: skip
        command = str(step["run"])
        step_env = {**env, **{key: text(interpolate(value, context)) for key, value in step.get("env", {}).items()}}
        if command.startswith("make install"):
            # One environment serves every job: the workspace's .venv is this one, and the job's Python
            # sees only the extras the job installs (scripts/install.sh: LLMBENCH_EXTRAS, default all).
            (workspace / ".venv").symlink_to(self.venv)
            extras = step_env.get("LLMBENCH_EXTRAS") or "all"
            python_dir = Path(env["PYTHONPATH"])
            write_only_installed(python_dir, job.name, extras.split(","))
            # An editable install of the checkout: its src is what every later step imports.
            env["PYTHONPATH"] = f"{python_dir}{os.pathsep}{workspace / 'src'}"
            return StepResult(name, step.get("id"), "success", f"installed pytest-llmbench[{extras},dev]", 0)
        output_file = home / "temp" / f"output-{index}"
        summary_file = home / "temp" / f"summary-{index}"
        output_file.touch()
        summary_file.touch()
        script = home / "temp" / f"step-{index}.sh"
        script.write_text(command + "\n")
        step_env.update(GITHUB_OUTPUT=str(output_file), GITHUB_STEP_SUMMARY=str(summary_file))
        process = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=workspace, env=step_env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
        )  # fmt: skip
        job.summary += summary_file.read_text()
        outputs = dict(line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line)
        outcome = "success" if process.returncode == 0 else "failure"
        return StepResult(name, step.get("id"), outcome, process.stdout, process.returncode, outputs)

    def _action(self, step: Mapping[str, Any], name: str, context: Mapping[str, Any], workspace: Path,
                run_id: str) -> StepResult:  # fmt: skip
        action = step["uses"].split("@")[0]
        given = {key: text(interpolate(value, context)) for key, value in step.get("with", {}).items()}
        try:
            if action == "actions/checkout":
                self._checkout(workspace, given.get("ref") or context["github"]["sha"], given.get("fetch-depth", "1"))
                output = f"checked out {given.get('ref') or context['github']['sha']}"
            elif action == "actions/upload-artifact":
                files = upload(self.artifacts(run_id), given["name"], workspace, given["path"],
                               given.get("if-no-files-found", "warn"))  # fmt: skip
                output = f"uploaded {given['name']}: {files}" if files else f"{given['name']}: nothing uploaded"
            elif action == "actions/download-artifact":
                download(self.artifacts(run_id), workspace, given.get("path", "."), given.get("name"),
                         given.get("pattern"))  # fmt: skip
                output = "downloaded"
            elif action == "actions/cache":  # nothing restored or saved here; the key it would use
                output = f"key: {given.get('key', '')}"
            elif action == "actions/setup-python":
                output = "nothing to do here"
            else:
                raise AssertionError(f"the runner here does not know {action}")
        except FileNotFoundError as error:
            return StepResult(name, step.get("id"), "failure", str(error))
        return StepResult(name, step.get("id"), "success", output)

    def _checkout(self, workspace: Path, ref: str, depth: str) -> None:
        """actions/checkout: fetch ``ref`` (and, with fetch-depth 0, every branch) from the repository."""
        remote = f"file://{self.server}/{self.repository}.git"
        env = {**os.environ, **IDENTITY}

        def git(*args: str) -> None:
            subprocess.run(["git", *args], cwd=workspace, env=env, check=True, capture_output=True)

        git("init", "--quiet")
        git("remote", "add", "origin", remote)
        git("fetch", "--quiet", "--no-tags", *([] if depth == "0" else [f"--depth={depth}"]), "origin", ref)
        git("checkout", "--quiet", "--detach", "FETCH_HEAD")
        if depth == "0":  # the whole history: every branch too
            git("fetch", "--quiet", "--no-tags", "origin", "+refs/heads/*:refs/remotes/origin/*")


def shards(runner: Runner, github: Mapping[str, Any], needs: Mapping[str, Sequence[JobResult]],
           vars: Mapping[str, str], lost: Sequence[int] = ()) -> list[JobResult]:  # fmt: skip
    """The ``shard`` job's matrix instances, run at once (each on a runner of its own); ``lost``: shards
    whose runner was lost."""
    from concurrent.futures import ThreadPoolExecutor

    context = {"github": github, "needs": needs_context(needs), "vars": vars}
    instances = runner.matrix("shard", context)
    with ThreadPoolExecutor(len(instances)) as pool:
        futures = [
            pool.submit(runner.run_job, "shard", github, needs, vars, instance, instance["shard"] in lost)
            for instance in instances
        ]
        return [future.result() for future in futures]


#: A stand-in for `gh api` over a JSON file of comments ($FAKE_GH_STATE); --jq filters go through the real jq.
FAKE_GH = r"""#!{python}
import json, os, subprocess, sys
state = os.environ["FAKE_GH_STATE"]
data = json.load(open(state))
args = sys.argv[1:]
data["calls"].append(args)
method, jq, fields, path, i = "GET", None, {{}}, None, 1
while i < len(args):
    if args[i] == "--method": method = args[i + 1]; i += 2
    elif args[i] == "--jq": jq = args[i + 1]; i += 2
    elif args[i] == "-F":
        key, value = args[i + 1].split("=", 1)
        fields[key] = open(value[1:]).read() if value.startswith("@") else value
        i += 2
    elif args[i] == "--paginate": i += 1
    else: path = args[i]; i += 1
if method == "GET":
    out = json.dumps(data["comments"])
    if jq:
        out = subprocess.run(["jq", "-r", jq], input=out, capture_output=True, text=True, check=True).stdout
    sys.stdout.write(out)
elif method == "POST":
    data["comments"].append({{"id": 100 + len(data["comments"]), "body": fields["body"], "path": path}})
else:
    for comment in data["comments"]:
        if comment["id"] == int(path.rsplit("/", 1)[1]):
            comment["body"] = fields["body"]
json.dump(data, open(state, "w"))
"""
