"""The GitHub Actions workflows: linted, pinned, least-privilege, and their steps run here.

The last test runs the benchmark workflow's own ``run:`` lines (read from the YAML) in job order on
the CPU default matrix, at a tiny scale (a tiny model built offline): plan, two shards in parallel,
merge, gate with no history, report, pull-request comment (a fake ``gh``), record in a local
history repository, then the gate again with that baseline.
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

from tests.support.fixed_clock_worker import inject_fixed_clock
from tests.support.git_repos import git
from tests.support.paths import REPO

yaml = pytest.importorskip("yaml")

WORKFLOWS = REPO / ".github" / "workflows"
BIN = Path(sys.executable).parent
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(name: str) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


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


EXPRESSION_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<op>&&|\|\||==|!=|[(),!])|(?P<name>[\w.-]+))")


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate the subset of GitHub's expression syntax the concurrency group and ``if:`` conditions use.

    Property paths, string literals, ``true`` / ``false``, ``format()``, ``!``, ``==`` / ``!=``
    (case-insensitive on strings) and ``&&`` / ``||``, which return an operand as in JavaScript; a
    missing property is null; ``cancelled()`` is false (a run nobody cancelled). A ``${{ }}`` wrapper
    is dropped.
    """
    expression = expression.strip().removeprefix("${{").removesuffix("}}")
    tokens = [(m.lastgroup, m.group(m.lastgroup or "")) for m in EXPRESSION_TOKEN.finditer(expression.strip())]
    assert "".join(value for _, value in tokens) == re.sub(r"\s+", "", expression), expression
    position = 0

    def peek() -> str | None:
        return tokens[position][1] if position < len(tokens) else None

    def take() -> tuple[str | None, str]:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def primary() -> Any:
        kind, value = take()
        if kind == "string":
            return value[1:-1].replace("''", "'")
        if value == "(":
            result = disjunction()
            assert take()[1] == ")"
            return result
        if value == "!":
            return not primary()
        if value in ("true", "false"):
            return value == "true"
        if value == "cancelled" and peek() == "(":
            take()
            assert take()[1] == ")"
            return False
        if peek() == "(":
            assert value == "format", value
            take()
            args = [disjunction()]
            while take()[1] == ",":
                args.append(disjunction())
            return re.sub(r"\{(\d+)\}", lambda m: str(args[1 + int(m.group(1))]), args[0])
        node: Any = context
        for part in value.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        return node

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


# --- the workflow's steps, run here ----------------------------------------------------------------

FAKE_GH = r"""#!{python}
# A stand-in for `gh api` over a JSON file of comments; --jq filters go through the real jq.
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

TINY_MATRIX = """
[matrix]
models = ["tiny"]
precisions = ["fp32", "bf16"]
devices = ["cpu", "cuda"]
batch_sizes = [1, 2]

[models.tiny]
source = "path:{path}"
family = "causal"
max_new_tokens = 4
"""


class Workflow:
    """Runs the ``run:`` lines of benchmarks.yml, as GitHub would (``bash -e``), in a copy of the repository."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.jobs = load("benchmarks.yml")["jobs"]

    def command(self, job: str, step: str) -> str:
        for candidate in self.jobs[job]["steps"]:
            if step in (candidate.get("name"), candidate.get("id")):
                return str(candidate["run"])
        raise KeyError(f"{job}: {step}")

    def start(self, job: str, step: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["bash", "-e", "-c", self.command(job, step)],
            cwd=self.root, env={**self.env, **env}, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def run(self, job: str, step: str, **env: str) -> subprocess.CompletedProcess[str]:
        process = self.start(job, step, **env)
        out, _ = process.communicate(timeout=600)
        return subprocess.CompletedProcess(process.args, process.returncode, out)


@pytest.mark.skipif(shutil.which("jq") is None or shutil.which("git") is None, reason="needs jq and git")
def test_benchmark_workflow_steps_on_the_cpu_default_matrix(tmp_path: Path, tiny_gemma3_dir: Path) -> None:
    # The repository as a runner's checkout sees it, with this environment's .venv ("make install").
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("benchmarks", "scripts", "src"):  # src: the record job runs `llmbench runs` from the checkout
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml",):
        shutil.copy(REPO / name, root / name)
    (root / ".venv").symlink_to(Path(sys.prefix))
    matrix = tmp_path / "matrix.toml"
    matrix.write_text(TINY_MATRIX.format(path=tiny_gemma3_dir))
    remote = tmp_path / "history.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(remote)], check=True)
    summary = tmp_path / "summary.md"
    summary.touch()
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "gh").write_text(FAKE_GH.format(python=sys.executable))
    (fake_bin / "gh").chmod(0o755)
    gh_state = tmp_path / "gh.json"
    gh_state.write_text(json.dumps({"comments": [{"id": 7, "body": "Looks good to me"}], "calls": []}))
    env = {
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "HF_HUB_OFFLINE": "1",
        "GITHUB_REPOSITORY": "example/llmbench",
        "GITHUB_STEP_SUMMARY": str(summary),
        "LLMBENCH_HISTORY_REMOTE": str(remote),
        "FAKE_GH_STATE": str(gh_state),
    }
    workflow = Workflow(root, env)

    # plan: the CPU default (no LLMBENCH_RUNNER), two shards; a tiny matrix through LLMBENCH_ARGS.
    output = tmp_path / "plan-output"
    output.touch()
    tiny = (
        f"--llmbench-matrix={matrix} --llmbench-rounds=1 --llmbench-warmup-rounds=0 --llmbench-quality-items=2 "
        f"--llmbench-outputs-dir={tmp_path / 'outputs'} --llmbench-cache-dir={tmp_path / 'cache'} "
        "--llmbench-peak-bandwidth=26GB/s"
    )
    result = workflow.run("plan", "plan", GITHUB_OUTPUT=str(output), LLMBENCH_ARGS=tiny)
    assert result.returncode == 0, result.stdout
    plan = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert plan["runner"] == '["ubuntu-latest"]'
    assert json.loads(plan["shards"]) == [1, 2]

    # shard: both shards at once, as the job matrix runs them.
    processes = [
        workflow.start("shard", "Run the shard", SHARD=str(k), SHARDS=plan["count"], LLMBENCH_ARGS=plan["args"])
        for k in json.loads(plan["shards"])
    ]
    outs = [process.communicate(timeout=600)[0] for process in processes]
    kept = []
    for k, (process, out) in enumerate(zip(processes, outs, strict=True), start=1):
        assert process.returncode == 0, out
        counts = re.search(rf"llmbench shard {k}/2: (\d+) of (\d+) combinations", out)
        assert counts is not None, out
        kept.append((int(counts[1]), int(counts[2])))
    # Every combination in exactly one shard, half each (the CUDA column was left out by the plan: below).
    assert kept[0] == kept[1]
    assert sum(k for k, _ in kept) == kept[0][1]
    # upload-artifact / download-artifact (pattern, no merge-multiple): one folder per artifact.
    for k in (1, 2):
        (root / "shards" / f"llmbench-shard-{k}").mkdir(parents=True)
        shutil.move(root / "results" / f"shard-{k}-of-2.json", root / "shards" / f"llmbench-shard-{k}")

    # gate: merge, no history yet, gate passes saying so, report.
    result = workflow.run("gate", "merge")
    assert result.returncode == 0, result.stdout
    assert "llmbench merge: 6 benchmarks from 2 runs -> results/merged.json" in result.stdout
    merged = json.loads((root / "results" / "merged.json").read_text())
    assert sorted({b["extra_info"]["precision"] for b in merged["benchmarks"]}) == ["bf16", "fp32"]
    assert {b["extra_info"].get("device", "cpu") for b in merged["benchmarks"]} == {"cpu"}
    assert len(merged["machine_info"]["llmbench_shards"]) == 2
    result = workflow.run("gate", "Fetch the history of the base branch")
    assert result.returncode == 0, result.stdout
    assert "no branch benchmark-data yet" in result.stdout
    result = workflow.run("gate", "gate", KIND=plan["kind"])
    assert result.returncode == 0, result.stdout
    assert "No baseline" in (root / "results" / "verdict.md").read_text()
    assert "No baseline" in summary.read_text()
    result = workflow.run("gate", "Report", KIND=plan["kind"])
    assert result.returncode == 0, result.stdout
    assert (root / "llmbench-report" / "index.html").exists()

    # comment: the verdict artifact as downloaded (report/results/verdict.md); posted, then updated.
    (root / "report" / "results").mkdir(parents=True)
    shutil.copy(root / "results" / "verdict.md", root / "report" / "results" / "verdict.md")
    comment_env = {"GH_TOKEN": "not-a-token", "PR_NUMBER": "12", "RUN_URL": "https://example.invalid/run/1"}
    for expected in ("posted a comment on #12", "updated comment 101"):
        result = workflow.run("comment", "Post or update the comment", **comment_env)
        assert result.returncode == 0, result.stdout
        assert expected in result.stdout
    state = json.loads(gh_state.read_text())
    ours = [c for c in state["comments"] if c["body"].startswith("<!-- llmbench-verdict -->")]
    assert len(ours) == 1
    assert len(state["comments"]) == 2
    assert "No baseline" in ours[0]["body"]
    assert "https://example.invalid/run/1" in ours[0]["body"]
    assert ours[0]["path"] == "repos/example/llmbench/issues/12/comments"

    # record (a push to main): the merged run goes to the benchmark-data branch.
    result = workflow.run("record", "Append it to the benchmark-data branch", KIND=plan["kind"])
    assert result.returncode == 0, result.stdout
    files = subprocess.run(
        ["git", "--git-dir", str(remote), "ls-tree", "-r", "--name-only", "benchmark-data"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert "README.md" in files
    recorded = [f for f in files if f.endswith(".json")]
    assert len(recorded) == 1
    assert re.fullmatch(r"cpu/[\w.-]+-\d+bit/0001_\w+\.json", recorded[0]), recorded

    # The next pull request: the history has a baseline now, and the gate compares with it.
    shutil.rmtree(root / "history")
    result = workflow.run("gate", "Fetch the history of the base branch")
    assert result.returncode == 0, result.stdout
    assert "1 runs in history" in result.stdout
    result = workflow.run("gate", "gate", KIND=plan["kind"])
    assert "gate: comparing results/merged.json with the baseline history/cpu/" in result.stdout
    assert result.returncode == 0, result.stdout
    verdict = (root / "results" / "verdict.md").read_text()
    assert "No baseline" not in verdict
    assert verdict.strip()

    # The next push to main is numbered after it.
    result = workflow.run("record", "Append it to the benchmark-data branch", KIND=plan["kind"])
    assert result.returncode == 0, result.stdout
    assert re.search(r"record-history: cpu/[\w.-]+/0002_\w+\.json on benchmark-data", result.stdout), result.stdout




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
#: absolute paths, as the real one does, to --llmbench-verdict and to $GITHUB_STEP_SUMMARY where set.
FAKE_LLMBENCH_AB = r"""#!/usr/bin/env bash
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


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_pull_request_steps_pair_base_and_head_on_each_shard(tmp_path: Path, tiny_gemma3_dir: Path) -> None:
    # The pull request's checkout with its whole history (fetch-depth 0): a base commit and a head commit.
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("benchmarks", "scripts", "src"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    # The plumbing is under test here, not the paired statistic (tests/test_ab.py): both commits' workers
    # report a fixed clock and fixed memory figures (tests/support/fixed_clock_worker.py), so the pairs
    # are decided from controlled figures under the default paired rules, whatever the load: every figure
    # is unchanged and none is noisy (no extra load pairs), and one load pair per shard is enough.
    inject_fixed_clock(root / "src")
    (root / ".gitignore").write_text(".venv\n__pycache__/\n/results/\n/shards/\n/history/\n/llmbench-report/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    base = git(root, "rev-parse", "HEAD").strip()
    (root / "CHANGES").write_text("a change that does not touch the code\n")
    git(root, "add", "CHANGES")
    git(root, "commit", "-q", "-m", "head")
    (root / ".venv").symlink_to(Path(sys.prefix))
    matrix = tmp_path / "matrix.toml"
    matrix.write_text(TINY_MATRIX.format(path=tiny_gemma3_dir).replace("[1, 2]", "[1]"))
    summary = tmp_path / "summary.md"
    summary.touch()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "HF_HUB_OFFLINE": "1",
        "GITHUB_STEP_SUMMARY": str(summary),
        "LLMBENCH_AB_ARGS": "--loads=1 --rounds=1 --warmup-rounds=0",
    }
    workflow = Workflow(root, env)
    output = tmp_path / "plan-output"
    output.touch()
    tiny = (
        f"--llmbench-matrix={matrix} --llmbench-quality-items=1 --llmbench-outputs-dir={tmp_path / 'outputs'} "
        f"--llmbench-cache-dir={tmp_path / 'cache'} --llmbench-peak-bandwidth=26GB/s"
    )
    assert workflow.run("plan", "plan", GITHUB_OUTPUT=str(output), LLMBENCH_ARGS=tiny).returncode == 0
    plan = dict(line.split("=", 1) for line in output.read_text().splitlines())

    # Each shard pairs base and head on its own runner (here: both at once).
    step = "Run the shard, base and head paired"
    shard_env = {"BASE_SHA": base, "SHARDS": plan["count"], "LLMBENCH_ARGS": plan["args"]}
    processes = [workflow.start("shard", step, SHARD=str(k), **shard_env) for k in json.loads(plan["shards"])]
    outs = [process.communicate(timeout=900)[0] for process in processes]
    for k, (process, out) in enumerate(zip(processes, outs, strict=True), start=1):
        assert process.returncode == 0, out
        assert f"ab-shard: shard {k}/2: {base} against HEAD, exit status 0" in out
        assert "(extra)" not in out
        results = root / "results" / f"ab-shard-{k}-of-2"
        assert (results / "status").read_text() == "0\n"
        assert "no regression" in (results / "verdict.md").read_text()
        runs = sorted(p.name.rsplit("-", 1)[-1] for p in (results / "runs").rglob("*.json"))
        assert runs == ["base.json", "head.json"]
        (root / "shards" / f"llmbench-shard-{k}").mkdir(parents=True)
        shutil.move(results, root / "shards" / f"llmbench-shard-{k}")
    assert "worktree" not in git(root, "status", "--porcelain")
    # A shard with nothing to measure passes and says so.
    result = workflow.run("shard", step, SHARD="9", **{**shard_env, "SHARDS": "9"})
    assert result.returncode == 0, result.stdout
    assert "ab-shard: shard 9/9 has no benchmarks" in result.stdout
    shutil.rmtree(root / "results")

    # gate: the head sides merged (for the report), every shard's verdict gates.
    merge_name = load("benchmarks.yml")["jobs"]["gate"]["steps"]
    merge_env = next(s for s in merge_name if s.get("id") == "merge")["env"]["LLMBENCH_MERGE_NAME"]
    pattern = evaluate(merge_env, {"github": {"event_name": "pull_request"}})
    result = workflow.run("gate", "merge", LLMBENCH_MERGE_NAME=pattern)
    assert result.returncode == 0, result.stdout
    merged = json.loads((root / "results" / "merged.json").read_text())
    assert sorted(b["extra_info"]["precision"] for b in merged["benchmarks"]) == ["bf16", "fp32"]
    assert {b["extra_info"]["llmbench_ab"] is not None for b in merged["benchmarks"]} == {True}
    result = workflow.run("gate", "ab-gate")
    assert result.returncode == 0, result.stdout
    verdict = (root / "results" / "verdict.md").read_text()
    assert "### Shard 1/2: llmbench regression gate: " in verdict
    assert "### Shard 2/2: llmbench regression gate: " in verdict
    assert "FAILED" not in verdict
    assert verdict in summary.read_text()
