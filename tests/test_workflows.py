"""The GitHub Actions workflows: linted, pinned, least-privilege, and the scripts of their steps.

The jobs run step by step, as a runner runs them, in ``tests/test_workflow_steps.py``; the expressions of
the ``if:`` conditions and the concurrency group are evaluated by ``tests/support/runner.py``.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO
from tests.support.runner import evaluate, load_workflow

WORKFLOWS = REPO / ".github" / "workflows"
BIN = Path(sys.executable).parent
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(name: str) -> dict[Any, Any]:
    return load_workflow(WORKFLOWS / name)


def steps(workflow: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml"))


def test_both_workflows_exist() -> None:
    assert [p.name for p in workflow_files()] == ["benchmarks.yml", "ci.yml"]


def test_workflows_match_githubs_schema() -> None:
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, workflow_files())],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_of_medium_severity_or_above() -> None:
    result = subprocess.run(
        [BIN / "zizmor", "--offline", "--no-progress", "--min-severity", "medium", str(WORKFLOWS)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


@pytest.mark.parametrize("name", ["benchmarks.yml", "ci.yml"])
def test_every_action_is_pinned_to_a_commit(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    uses = [step["uses"] for _, step in steps(load(name)) if "uses" in step]
    assert uses
    for use in uses:
        assert SHA_PIN.match(use), f"{use} is not pinned to a full commit SHA"
        # The release it stands for, as a comment a reviewer (and Dependabot) can read.
        assert re.search(re.escape(use) + r" # v\d+\.\d+\.\d+$", text, re.MULTILINE), use


@pytest.mark.parametrize("name", ["benchmarks.yml", "ci.yml"])
def test_security_model(name: str) -> None:
    workflow = load(name)
    text = (WORKFLOWS / name).read_text()
    assert "pull_request_target" not in workflow["on"]
    assert "secrets." not in text  # no secrets anywhere (the job token is github.token)
    for job_name, job in workflow["jobs"].items():
        assert "permissions" in job or "permissions" in workflow, f"{name}: job {job_name} has no permissions"
    for job_name, step in steps(workflow):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, f"{name}: {job_name} persists credentials"
        # Expressions reach shell only through env (no template injection); steps are one-line commands.
        run = step.get("run", "")
        assert "${{" not in run, f"{name}: {job_name}: {run}"
        assert "\n" not in run.strip(), f"{name}: {job_name}: multi-line shell; use scripts/ci/*.sh"


def test_benchmark_jobs_are_least_privilege() -> None:
    workflow = load("benchmarks.yml")
    jobs = workflow["jobs"]
    assert workflow["permissions"] == {}
    # Jobs that run the project's (possibly a pull request's) code only read.
    for name in ("plan", "shard", "gate"):
        assert jobs[name]["permissions"] == {"contents": "read"}, name
    assert jobs["approve"]["permissions"] == {}
    assert jobs["comment"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert jobs["record"]["permissions"] == {"contents": "write"}
    # The comment job checks out the base branch, never the pull request, and runs no project code.
    checkout = next(s for s in jobs["comment"]["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    # Only default-branch runs write the history; pull requests never do.
    assert "github.event_name != 'pull_request'" in jobs["record"]["if"]
    assert "default_branch" in jobs["record"]["if"]
    # Pull requests need the label; forks wait for the environment's reviewers.
    assert "'benchmark'" in jobs["plan"]["if"]
    assert jobs["approve"]["environment"] == "benchmark-fork"
    assert "approve" in jobs["shard"]["needs"]
    assert workflow["on"]["pull_request"]["types"] == ["opened", "synchronize", "reopened", "labeled"]
    assert jobs["shard"]["runs-on"] == "${{ fromJSON(needs.plan.outputs.runner) }}"


def concurrency_group(event: Mapping[str, Any]) -> str:
    template = load("benchmarks.yml")["concurrency"]["group"]
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(evaluate(m.group(1), {"github": event}) or ""), template)


def test_a_label_other_than_benchmark_never_cancels_a_benchmark() -> None:
    def pull_request(action: str, label: str | None, run_id: str) -> dict[str, Any]:
        event: dict[str, Any] = {"action": action, "pull_request": {"number": 42}}
        if label is not None:
            event["label"] = {"name": label}
        return {"event_name": "pull_request", "event": event, "ref": "refs/pull/42/merge", "run_id": run_id}

    benchmark = concurrency_group(pull_request("labeled", "benchmark", "101"))
    assert benchmark == "benchmarks-42"
    # A push to the pull request joins the benchmark's group and cancels it (its code changed) ...
    assert concurrency_group(pull_request("synchronize", None, "102")) == benchmark
    # ... another label does not: a group of its own, so the running benchmark goes on.
    other = concurrency_group(pull_request("labeled", "documentation", "103"))
    assert other == "benchmarks-42-label-103"
    assert concurrency_group(pull_request("labeled", "documentation", "104")) != other
    # Pushes to main and nightly runs keep one group per ref.
    push = {"event_name": "push", "event": {}, "ref": "refs/heads/main", "run_id": "105"}
    assert concurrency_group(push) == "benchmarks-refs/heads/main"


def test_pushes_nightly_runs_and_manual_runs_of_the_default_branch_are_recorded() -> None:
    condition = load("benchmarks.yml")["jobs"]["record"]["if"]
    merged = {"gate": {"outputs": {"merged": "true"}}}

    def recorded(event_name: str, ref: str, event: dict[str, Any]) -> bool:
        github = {"event_name": event_name, "ref": ref, "event": event}
        return bool(evaluate(condition, {"github": github, "needs": merged}))

    repository = {"repository": {"default_branch": "main"}}
    assert recorded("push", "refs/heads/main", repository)
    # A scheduled run checks out the default branch; its event has no repository (so no default_branch).
    assert recorded("schedule", "refs/heads/main", {"schedule": "17 3 * * *"})
    assert recorded("workflow_dispatch", "refs/heads/main", repository)
    assert not recorded("workflow_dispatch", "refs/heads/feature", repository)
    assert not recorded("pull_request", "refs/pull/42/merge", {**repository, "pull_request": {"number": 42}})
    assert not evaluate(condition, {"github": {"event_name": "schedule", "ref": "refs/heads/main", "event": {}},
                                    "needs": {"gate": {"outputs": {"merged": "false"}}}})  # fmt: skip


def test_ci_runs_lint_typecheck_and_tests_on_two_pythons() -> None:
    job = load("ci.yml")["jobs"]["test"]
    assert job["strategy"]["matrix"]["python"] == ["3.11", "3.12"]
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert runs == ["make install PYTHON=python", "make lint", "make typecheck", "make test", "make neighbour"]
    cache = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == "~/.cache/llmbench"


def test_the_adapter_is_tested_on_the_pinned_and_the_newest_pytest_benchmark() -> None:
    job = load("ci.yml")["jobs"]["pytest-benchmark"]
    assert job["strategy"]["matrix"]["release"] == ["pinned", "newest"]
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert runs == ["make install PYTHON=python", 'scripts/ci/pytest-benchmark-adapter.sh "$RELEASE"']


@pytest.mark.parametrize("script", sorted((REPO / "scripts" / "ci").glob("*.sh")), ids=lambda p: p.name)
def test_scripts_parse_and_are_executable(script: Path) -> None:
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_every_script_a_workflow_runs_exists() -> None:
    for name in ("benchmarks.yml", "ci.yml"):
        for _, step in steps(load(name)):
            for script in re.findall(r"scripts/ci/[\w.-]+\.sh", step.get("run", "")):
                assert (REPO / script).exists(), script


def test_every_file_a_cache_key_hashes_exists() -> None:
    # hashFiles() of files that do not exist is an empty string: the key never changes with the code.
    for name in ("benchmarks.yml", "ci.yml"):
        for job_name, step in steps(load(name)):
            key = step.get("with", {}).get("key", "")
            for call in re.findall(r"hashFiles\(([^)]*)\)", key):
                paths = re.findall(r"'([^']+)'", call)
                assert paths, (name, job_name, key)
                for path in paths:
                    assert list(REPO.glob(path)), f"{name}: {job_name}: hashFiles('{path}'): no such file"


def test_every_page_and_section_a_workflow_cites_exists() -> None:
    headings = {
        page: {line.lstrip("#").strip() for line in (REPO / page).read_text().splitlines() if line.startswith("#")}
        for page in ["README.md", *(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
    }  # fmt: skip
    cited = 0
    for path in workflow_files():
        for page, section in re.findall(r"\b(README|docs/[\w.-]+\.md)(?:, \"([^\"]+)\")?", path.read_text()):
            page = "README.md" if page == "README" else page
            assert page in headings, f"{path.name} cites {page}, which does not exist"
            assert not section or section in headings[page], f"{path.name} cites {page}, section {section!r}"
            cited += 1
    assert cited


def test_tox_bench_saves_what_make_bench_saves() -> None:
    # --benchmark-save-data keeps every round's time: the gate's rank test needs them (docs/gate.md).
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile[makefile.index("\nbench: ") :].split("\n\n")[0]
    make_flags = set(re.findall(r"--benchmark-(?:autosave|save-data)\b", recipe))
    assert make_flags == {"--benchmark-autosave", "--benchmark-save-data"}
    tox = configparser.ConfigParser()
    tox.read(REPO / "tox.ini")
    assert make_flags <= set(tox["testenv:bench"]["commands"].split())


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {"runner": '["ubuntu-latest"]', "shards": "[1,2]", "count": "2", "args": "--llmbench-device=cpu",
              "kind": "cpu"}),
        ({"LLMBENCH_RUNNER": "gpu", "LLMBENCH_SHARDS": "3"},
         {"runner": '["self-hosted", "linux", "gpu"]', "shards": "[1,2,3]", "count": "3", "args": "", "kind": "gpu",
          "torch-index": ""}),
        ({"LLMBENCH_RUNNER": '["self-hosted", "a100"]', "LLMBENCH_ARGS": "--llmbench-precision=bf16"},
         {"runner": '["self-hosted", "a100"]', "shards": "[1]", "args": "--llmbench-precision=bf16",
          "kind": "self-hosted-a100"}),
    ],
)  # fmt: skip
def test_plan(tmp_path: Path, env: dict[str, str], expected: dict[str, str]) -> None:
    output = tmp_path / "output"
    output.touch()
    environ = {"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output), **env}
    subprocess.run([REPO / "scripts" / "ci" / "plan.sh"], env=environ, check=True, capture_output=True)
    plan = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert {key: plan[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("env", "message"), [({"LLMBENCH_RUNNER": "tpu"}, "is not cpu, gpu"), ({"LLMBENCH_SHARDS": "0"}, "from 1 to 99")]
)
def test_plan_refuses_bad_variables(env: dict[str, str], message: str) -> None:
    result = subprocess.run(
        [REPO / "scripts" / "ci" / "plan.sh"], env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_an_empty_shard_passes_and_saves_no_run(tmp_path: Path) -> None:
    # More shards than the matrix can fill: pytest-benchmark warns "Not saving anything", which the
    # project's filterwarnings = error (pyproject.toml) would make a failure of the shard's job.
    for name in ("pyproject.toml", "benchmarks/matrix.toml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "benchmarks" / "test_plain.py").write_text("def test_plain(benchmark):\n    benchmark(sum, [1])\n")
    script = REPO / "scripts" / "ci" / "bench-shard.sh"
    env = {"PATH": os.environ["PATH"], "PYTHON": sys.executable}
    # A benchmark outside the matrix goes to shard 1; shard 2 of 2 has nothing to run.
    result = subprocess.run([script, "2", "2"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bench-shard: shard 2/2 has no tests (more shards than the matrix can fill)" in result.stdout
    assert not (tmp_path / "results" / "shard-2-of-2.json").exists()


#: The extras (pyproject.toml) a step's script needs beyond the core dependencies: the plots of `llmbench
#: report`, the change points of `llmbench history` (Apache Otava). The step-by-step test runs each job
#: with only what it installs (tests/support/runner.py).
SCRIPT_EXTRAS = {"report.sh": {"report"}, "history.sh": {"history"}}


def test_each_job_installs_the_extras_its_steps_need() -> None:
    for name, job in load("benchmarks.yml")["jobs"].items():
        extras = set(job.get("env", {}).get("LLMBENCH_EXTRAS", "all").split(","))
        for step in job.get("steps", []):
            for script in re.findall(r"scripts/ci/([\w.-]+\.sh)", step.get("run", "")):
                assert "all" in extras or SCRIPT_EXTRAS.get(script, set()) <= extras, (name, script, extras)


def test_a_pull_request_pairs_base_and_head_in_each_shard() -> None:
    jobs = load("benchmarks.yml")["jobs"]
    pull_request = {"github": {"event_name": "pull_request"}}
    push = {"github": {"event_name": "push"}}

    def runs(job: str, context: Mapping[str, Any]) -> list[str]:
        return [s["run"] for s in jobs[job]["steps"] if "run" in s and evaluate(s.get("if", "true"), context)]

    # The shard job fetches the whole history on a pull request only (the base commit for llmbench ab).
    checkout = next(s for s in jobs["shard"]["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    depth = checkout["with"]["fetch-depth"]
    assert (evaluate(depth, pull_request), evaluate(depth, push)) == ("0", "1")
    ab = next(s for s in jobs["shard"]["steps"] if "ab-shard.sh" in s.get("run", ""))
    assert ab["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    # llmbench ab's own options (--one-side-at-a-time on a GPU) from a repository variable, through env:.
    assert ab["env"]["LLMBENCH_AB_ARGS"] == "${{ vars.LLMBENCH_AB_ARGS }}"
    # A pull request runs the paired shard and the paired gate; pushes and the schedule run as before.
    paired, one_sided = (
        'scripts/ci/ab-shard.sh "$BASE_SHA" "$SHARD" "$SHARDS"',
        'scripts/ci/bench-shard.sh "$SHARD" "$SHARDS"',
    )
    assert [r for r in runs("shard", pull_request) if "shard.sh" in r] == [paired]
    assert [r for r in runs("shard", push) if "shard.sh" in r] == [one_sided]
    gate_if = {s.get("id"): s["if"] for s in jobs["gate"]["steps"] if "if" in s}
    assert evaluate(gate_if["gate"], push)
    assert not evaluate(gate_if["gate"], pull_request)
    assert evaluate(gate_if["ab-gate"], pull_request)
    assert not evaluate(gate_if["ab-gate"], push)
    assert "results/ab-shard-*/" in jobs["shard"]["steps"][-1]["with"]["path"]


def test_ab_gate_fails_when_any_shard_failed(tmp_path: Path) -> None:
    for k in range(1, 11):
        shard = tmp_path / "shards" / f"llmbench-shard-{k}" / f"ab-shard-{k}-of-10"
        shard.mkdir(parents=True)
        (shard / "status").write_text(("1" if k == 2 else "0") + "\n")
        (shard / "verdict.md").write_text(f"## llmbench regression gate: title\n\nverdict of shard {k}\n")
    summary = tmp_path / "summary.md"
    summary.write_text("before\n")
    verdict = tmp_path / "results" / "verdict.md"

    def gate(*count: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [REPO / "scripts" / "ci" / "ab-gate.sh", tmp_path / "shards", verdict, *count],
            env={"PATH": os.environ["PATH"], "GITHUB_STEP_SUMMARY": str(summary)}, capture_output=True, text=True,
        )  # fmt: skip

    result = gate()
    assert result.returncode == 1, result.stdout + result.stderr
    text = verdict.read_text()
    assert [line for line in text.splitlines() if line.startswith("verdict of")] == [
        f"verdict of shard {k}" for k in range(1, 11)
    ]
    assert "### Shard 10/10: llmbench regression gate: title" in text
    assert "## llmbench regression gate" not in text.replace("### Shard", "")
    assert "**FAILED** in shard 2/10 (status 1)." in text
    assert summary.read_text() == "before\n" + text
    (tmp_path / "shards" / "llmbench-shard-2" / "ab-shard-2-of-10" / "status").write_text("0\n")
    assert gate().returncode == 0
    assert gate("10").returncode == 0
    (tmp_path / "shards" / "llmbench-shard-2" / "ab-shard-2-of-10" / "status").unlink()  # a shard that died
    result = gate()
    assert result.returncode == 1
    assert "**FAILED** in shard 2/10 (status missing)." in verdict.read_text()
    # A shard whose job uploaded nothing (it failed or was cancelled before its upload step) is named.
    shutil.rmtree(tmp_path / "shards" / "llmbench-shard-7")
    result = gate("10")
    assert result.returncode == 1
    text = verdict.read_text()
    assert "### Shard 7/10\n\nNo paired run: this shard's job uploaded nothing" in text
    assert "**FAILED** in shard 2/10 (status missing), 7/10 (uploaded nothing)." in text
    assert "ab-gate: 9 of 10 shards uploaded, 2 failed" in result.stdout
    # The plan's count tells that the last shards, or all, are missing; the folders' names alone cannot.
    for k in range(1, 11):
        shutil.rmtree(tmp_path / "shards" / f"llmbench-shard-{k}", ignore_errors=True)
    (tmp_path / "shards" / "llmbench-shard-1" / "ab-shard-1-of-2").mkdir(parents=True)
    (tmp_path / "shards" / "llmbench-shard-1" / "ab-shard-1-of-2" / "status").write_text("0\n")
    result = gate()
    assert result.returncode == 1
    assert "**FAILED** in shard 2/2 (uploaded nothing)." in verdict.read_text()
    result = gate("3")
    assert result.returncode == 2
    assert "is not one of the 3 shards of this run" in result.stderr
    shutil.rmtree(tmp_path / "shards")
    (tmp_path / "shards").mkdir()
    result = gate()
    assert result.returncode == 1
    assert "No shard left a paired run" in verdict.read_text()
    result = gate("2")
    assert result.returncode == 1
    assert "**FAILED** in shard 1/2 (uploaded nothing), 2/2 (uploaded nothing)." in verdict.read_text()


def test_a_failed_step_other_than_the_gates_is_said_in_the_verdict_and_the_summary(tmp_path: Path) -> None:
    # The gate job's step before its upload: the verdict of a green gate must not read as a green check
    # when the report failed (the comment is made of the verdict).
    step = next(s for s in load("benchmarks.yml")["jobs"]["gate"]["steps"] if "failed-steps.sh" in s.get("run", ""))
    assert step["env"]["STEPS"] == "${{ toJSON(steps) }}"
    (tmp_path / "scripts").symlink_to(REPO / "scripts")
    verdict = tmp_path / "results" / "verdict.md"
    verdict.parent.mkdir()
    summary = tmp_path / "summary.md"

    def note(outcomes: dict[str, str]) -> subprocess.CompletedProcess[str]:
        verdict.write_text("## llmbench verdict\n\nno regression\n")
        summary.write_text("")
        steps_json = json.dumps({name: {"outcome": o, "conclusion": o, "outputs": {}} for name, o in outcomes.items()})
        return subprocess.run(
            ["bash", "-e", "-c", step["run"]], cwd=tmp_path, capture_output=True, text=True,
            env={"PATH": os.environ["PATH"], "GITHUB_STEP_SUMMARY": str(summary), "STEPS": steps_json},
        )  # fmt: skip

    result = note({"merge": "success", "ab-gate": "success", "report": "failure", "history": "skipped"})
    assert result.returncode == 0, result.stderr
    expected = (
        "**This check failed** in the gate job's step `report`, which the verdict above does not cover: "
        "see the workflow run."
    )
    assert verdict.read_text() == f"## llmbench verdict\n\nno regression\n\n{expected}\n"
    assert summary.read_text() == f"\n{expected}\n"
    # A gate's own failure is the verdict (a regression): nothing is added.
    result = note({"merge": "success", "ab-gate": "failure", "report": "success"})
    assert result.returncode == 0, result.stderr
    assert verdict.read_text() == "## llmbench verdict\n\nno regression\n"
    assert summary.read_text() == ""


#: A stand-in for `llmbench ab` (named by $LLMBENCH): writes a verdict that names the pair's run files by
#: absolute paths, as the real one does, to --llmbench-verdict and to $GITHUB_STEP_SUMMARY where set; with
#: $FAKE_AB_EMPTY, the error of a shard with no benchmark (exit 2); with $FAKE_AB_ARGS, its arguments to that
#: file, one a line.
FAKE_LLMBENCH_AB = r"""#!/usr/bin/env bash
if [[ -n ${FAKE_AB_ARGS:-} ]]; then printf '%s\n' "$@" >"$FAKE_AB_ARGS"; fi
if [[ -n ${FAKE_AB_EMPTY:-} ]]; then
  echo "llmbench ab: error: the arguments select no generate benchmark" >&2
  exit 2
fi
for arg; do [[ $arg == --llmbench-verdict=* ]] && verdict=${arg#*=}; done
mkdir -p "$(dirname "$verdict")"
text="## llmbench regression gate: no regression

Baseline: 0001 ($PWD/results/ab-shard-1-of-2/runs/m/0001_ab-base.json), base side: abc
Current: 0002 ($(pwd -P)/results/ab-shard-1-of-2/runs/m/0002_ab-head.json), head side: HEAD"
printf '%s\n' "$text" >"$verdict"
if [[ -n ${GITHUB_STEP_SUMMARY:-} ]]; then printf '%s\n' "$text" >>"$GITHUB_STEP_SUMMARY"; fi
"""


def test_a_paired_shards_verdict_names_its_runs_relative_to_the_checkout(tmp_path: Path) -> None:
    # The verdict reaches the gate job's summary and the pull-request comment: no runner's absolute paths.
    fake = tmp_path / "fake-llmbench"
    fake.write_text(FAKE_LLMBENCH_AB)
    fake.chmod(0o755)
    checkout = tmp_path / "work" / "repo"
    checkout.mkdir(parents=True)
    summary = tmp_path / "summary.md"
    summary.touch()
    result = subprocess.run(
        [REPO / "scripts" / "ci" / "ab-shard.sh", "abc", "1", "2"], cwd=checkout, capture_output=True, text=True,
        env={"PATH": os.environ["PATH"], "LLMBENCH": str(fake), "GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    verdict = (checkout / "results" / "ab-shard-1-of-2" / "verdict.md").read_text()
    assert "Baseline: 0001 (results/ab-shard-1-of-2/runs/m/0001_ab-base.json), base side: abc" in verdict
    assert "Current: 0002 (results/ab-shard-1-of-2/runs/m/0002_ab-head.json), head side: HEAD" in verdict
    assert str(tmp_path) not in verdict
    assert summary.read_text() == verdict


def test_a_paired_shard_with_no_benchmark_passes_and_says_so(tmp_path: Path) -> None:
    fake = tmp_path / "fake-llmbench"
    fake.write_text(FAKE_LLMBENCH_AB)
    fake.chmod(0o755)
    result = subprocess.run(
        [REPO / "scripts" / "ci" / "ab-shard.sh", "abc", "3", "3"], cwd=tmp_path, capture_output=True, text=True,
        env={"PATH": os.environ["PATH"], "LLMBENCH": str(fake), "FAKE_AB_EMPTY": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ab-shard: shard 3/3 has no benchmarks (more shards than the matrix can fill)" in result.stdout
    shard = tmp_path / "results" / "ab-shard-3-of-3"
    assert (shard / "status").read_text() == "0\n"
    assert (shard / "verdict.md").read_text() == "### Shard 3/3\n\nNo benchmarks in this shard.\n"


def test_a_paired_shard_passes_llmbench_ab_its_options(tmp_path: Path) -> None:
    fake = tmp_path / "fake-llmbench"
    fake.write_text(FAKE_LLMBENCH_AB)
    fake.chmod(0o755)
    args = tmp_path / "args"
    env = {"PATH": os.environ["PATH"], "LLMBENCH": str(fake), "FAKE_AB_ARGS": str(args),
           "LLMBENCH_AB_ARGS": "--one-side-at-a-time  --loads=3", "LLMBENCH_ARGS": "--llmbench-device=cpu"}  # fmt: skip
    result = subprocess.run([REPO / "scripts" / "ci" / "ab-shard.sh", "abc", "1", "2"], cwd=tmp_path,
                            capture_output=True, text=True, env=env)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    given = args.read_text().splitlines()
    # ab's options before the "--" that starts pytest's arguments; the plan's pytest arguments after it.
    expected = ["ab", "abc", "HEAD", "--one-side-at-a-time", "--loads=3", "--", "benchmarks"]
    assert given[: given.index("--") + 2] == expected
    assert "--llmbench-device=cpu" in given[given.index("--") :]


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip()


def test_every_shard_fetches_the_history_commit_the_plan_saw(tmp_path: Path) -> None:
    # A run recorded between the plan and a shard's fetch must not reach that shard: its split would differ
    # from the others' and llmbench merge would refuse the shards.
    env = {"PATH": os.environ["PATH"], "GITHUB_SERVER_URL": f"file://{tmp_path / 'server'}",
           "GITHUB_REPOSITORY": "owner/repo", "HOME": str(tmp_path)}  # fmt: skip

    def script(name: str, *args: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([REPO / "scripts" / "ci" / name, *args], cwd=cwd, env=env, capture_output=True,
                                text=True)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    # The first night: no history branch; the plan's commit is empty and the shard's history is empty.
    remote = tmp_path / "server" / "owner" / "repo.git"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    output = tmp_path / "output"
    output.touch()
    env["GITHUB_OUTPUT"] = str(output)
    assert script("history-commit.sh").stdout == "commit=\n"
    assert output.read_text() == "commit=\n"
    assert "the plan saw no history" in script("fetch-history.sh", "history", "").stdout
    assert list((tmp_path / "history").iterdir()) == []
    # Night 1 recorded; the plan sees it; night 2 is recorded before the shard fetches.
    work = tmp_path / "work"
    (work / "cpu").mkdir(parents=True)
    _git(work, "init", "-q", "-b", "benchmark-data")
    for night in (1, 2):
        (work / "cpu" / f"000{night}_night.json").write_text("{}")
        _git(work, "add", ".")
        _git(work, "commit", "-q", "-m", f"night {night}")
        _git(work, "push", "-q", str(remote), "benchmark-data")
        if night == 1:
            planned = script("history-commit.sh").stdout.removeprefix("commit=").strip()
            assert planned == _git(work, "rev-parse", "HEAD")
    assert "1 runs in history (at " in script("fetch-history.sh", "history", planned).stdout
    assert sorted(p.name for p in (tmp_path / "history" / "cpu").iterdir()) == ["0001_night.json"]
    # Without a commit: the branch as it is now (the gate job).
    assert "2 runs in latest" in script("fetch-history.sh", "latest").stdout
    bad = subprocess.run([REPO / "scripts" / "ci" / "fetch-history.sh", "other", "main"], cwd=tmp_path, env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2
    assert "COMMIT=main is not a full commit id" in bad.stderr


def test_the_shards_balance_by_the_history_the_plan_saw() -> None:
    jobs = load("benchmarks.yml")["jobs"]
    history = next(s for s in jobs["plan"]["steps"] if s.get("id") == "history")
    assert history["run"] == "scripts/ci/history-commit.sh"
    assert jobs["plan"]["outputs"]["history-commit"] == "${{ steps.history.outputs.commit }}"
    shard = jobs["shard"]
    names = [s.get("name", s.get("uses", "")) for s in shard["steps"]]
    fetch = next(s for s in shard["steps"] if "fetch-history.sh" in s.get("run", ""))
    assert fetch["run"] == 'scripts/ci/fetch-history.sh history "$HISTORY_COMMIT"'
    assert fetch["env"]["HISTORY_COMMIT"] == "${{ needs.plan.outputs.history-commit }}"
    # Fetched before either way of running the shard; the costs are the fetched history of this runner kind.
    assert names.index(fetch["name"]) < min(names.index("Run the shard"),
                                            names.index("Run the shard, base and head paired"))  # fmt: skip
    assert shard["env"]["LLMBENCH_SHARD_COSTS"] == "history/${{ needs.plan.outputs.kind }}"
