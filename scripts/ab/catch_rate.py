"""Measure llmbench ab against injected changes (docs/ab.md): flagged counts, next to the history gate.

Usage (from the repository root, the scale is a parameter)::

    .venv/bin/python scripts/ab/catch_rate.py --pairs 20 --out results/ab-catch-rate -- \\
        benchmarks --llmbench-model=gemma3-270m --llmbench-precision=q4_k_m --llmbench-batch-size=1

A scratch clone gets the working tree's ``src`` committed as ``base`` and one branch per injected
change (scripts/ab/inject.py). Scenarios run round-robin (A/A, then each injection, then A/A
again...) so slow drift of the machine spreads over all of them. Per pair: ``llmbench ab``'s exit
status and the verdict on latency and peak RSS; and the history-based gate (``compare_runs`` with
the latest earlier base run as baseline and up to 10 earlier base runs as drift history) on the same
head run. Writes ``results.jsonl`` and prints the table of docs/ab.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inject import inject

from llmbench.gate import choose_baseline, compare_runs, parse_baseline
from llmbench.runs import list_runs, load_run, machine_id_here

REPO = Path(__file__).resolve().parents[2]
MiB = 2**20
#: name -> (slow share, held bytes, held share of RSS); "aa" is the base on both sides.
SCENARIOS = {
    "aa": (0.0, 0, 0.0),
    "slow3": (0.03, 0, 0.0),
    "slow5": (0.05, 0, 0.0),
    "slow10": (0.10, 0, 0.0),
    "slow20": (0.20, 0, 0.0),
    "mem5": (0.0, 0, 0.05),
    "mem64": (0.0, 64 * MiB, 0.0),
}


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "ab", "GIT_AUTHOR_EMAIL": "ab@localhost", "GIT_COMMITTER_NAME": "ab",
           "GIT_COMMITTER_EMAIL": "ab@localhost", "PATH": "/usr/bin:/bin:/usr/local/bin"}  # fmt: skip
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def scratch_repo(where: Path, scenarios: list[str]) -> Path:
    repo = where / "repo"
    git(REPO, "clone", "--quiet", "--local", str(REPO), str(repo))
    shutil.rmtree(repo / "src")
    shutil.copytree(REPO / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    git(repo, "checkout", "--quiet", "-B", "base")
    git(repo, "add", "-A", "src")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "base: the working tree's src")
    for name in scenarios:
        if name == "aa":
            continue
        slow, hold_bytes, hold_share = SCENARIOS[name]
        git(repo, "checkout", "--quiet", "-B", f"inject-{name}", "base")
        inject(repo, slow=slow, hold_bytes=hold_bytes, hold_share=hold_share)
        git(repo, "commit", "--quiet", "-am", f"inject {name}")
    git(repo, "checkout", "--quiet", "base")
    return repo


def target(scenario: str) -> str | None:
    """The metric an injected change must be flagged on; None for A/A (any regression is a false alarm)."""
    return None if scenario == "aa" else "peak_rss_bytes" if scenario.startswith("mem") else "latency_s"


def flagged(runs_dir: Path, head: Path, metric: str | None) -> tuple[bool, bool, str, str]:
    """(ab flagged the metric, the history gate flagged it, ab's verdict, the history gate's verdict) on
    one head run; with ``metric`` None (A/A), whether each failed at all, and their latency verdicts."""
    from llmbench.ab.verdict import compare_pair

    folder = head.parent
    saved = list_runs(folder.parent, folder.name)
    number = int(head.name[:4])
    base_runs = [p for p in saved if p.name.endswith("-base.json") and int(p.name[:4]) < number]
    head_run = load_run(head)
    pair = compare_pair(load_run(base_runs[-1]), head_run)
    with tempfile.TemporaryDirectory(prefix="ab-history-") as plain:
        # The gate never takes a run saved by llmbench ab as one-sided history: copies without the pair's
        # marks stand for the same rounds saved by one-sided runs.
        history = [unpaired(path, Path(plain) / folder.name) for path in base_runs]
        head_plain = load_run(unpaired(head, Path(plain) / folder.name))
        baseline = choose_baseline(parse_baseline("last", "catch_rate.py"), history, head_plain.fingerprint,
                                   storage=Path(plain), machine_id=folder.name, drift_history=10)  # fmt: skip
        gate = compare_runs(baseline, head_plain)
    found = []
    for verdict in (pair, gate):
        cells = [d for r in verdict.results for d in r.decisions if d.metric == (metric or "latency_s")]
        failed = verdict.failed if metric is None else any(d.fails for d in cells)
        found.append((failed, cells[0].verdict if cells else "n/a"))
    return found[0][0], found[1][0], found[0][1], found[1][1]


def unpaired(path: Path, folder: Path) -> Path:
    """A copy of a run saved by llmbench ab in ``folder`` without the pair's marks (a one-sided run)."""
    data = json.loads(path.read_text())
    data["machine_info"].pop("llmbench_ab", None)
    for bench in data["benchmarks"]:
        bench.get("extra_info", {}).pop("llmbench_ab", None)
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / path.name
    copy.write_text(json.dumps(data))
    return copy


def summarize(out: Path, first_pair: int = 0) -> list[str]:
    """Re-decide every saved pair (from index ``first_pair`` on) with the current code; the markdown
    table of docs/ab.md."""
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
    rows = [row for row in rows if int(row["pair"]) >= first_pair]
    runs = (out / "runs").resolve()
    counts: dict[str, dict[str, int]] = {}
    spread: dict[str, list[float]] = {}
    for row in rows:
        tally = counts.setdefault(str(row["scenario"]), {})
        tally["pairs"] = tally.get("pairs", 0) + 1
        if "head_run" not in row:
            tally["errors"] = tally.get("errors", 0) + 1
            continue
        head = runs / machine_id_here() / str(row["head_run"])
        ab, gate, ab_cell, gate_cell = flagged(runs, head, target(str(row["scenario"])))
        extra = loads_run(head) - int(json.loads(head.read_text())["machine_info"]["llmbench_ab"]["loads"])
        for key, value in (("ab", ab), ("gate", gate), (f"ab {ab_cell}", 1), (f"gate {gate_cell}", 1),
                           ("extended", extra > 0), ("extra loads", extra)):  # fmt: skip
            tally[key] = tally.get(key, 0) + int(value)
        spread.setdefault(str(row["scenario"]), []).extend(load_ratios(head, target(str(row["scenario"]))))

    def verdicts(tally: dict[str, int], side: str) -> str:
        return ", ".join(f"{tally[f'{side} {v}']} {v}" for v in ("regressed", "noisy", "unchanged", "improved", "n/a")
                         if tally.get(f"{side} {v}"))  # fmt: skip

    lines = ["| scenario | metric | pairs | per-load change (min..max) | llmbench ab flagged | its verdicts "
             "| pairs with extra load pairs (extra loads) | history gate flagged | its verdicts | errors |",
             "|---|---|---:|---|---:|---|---:|---:|---|---:|"]  # fmt: skip
    for name, tally in counts.items():
        metric = target(name) or "any (latency shown)"
        ratios = spread.get(name) or [1.0]
        changes = f"{(min(ratios) - 1) * 100:+.1f}%..{(max(ratios) - 1) * 100:+.1f}%"
        lines.append(f"| {name} | {metric} | {tally['pairs']} | {changes} | {tally.get('ab', 0)} "
                     f"| {verdicts(tally, 'ab')} "
                     f"| {tally.get('extended', 0)} ({tally.get('extra loads', 0)}) "
                     f"| {tally.get('gate', 0)} | {verdicts(tally, 'gate')} | {tally.get('errors', 0)} |")  # fmt: skip
    return lines


def load_ratios(head: Path, metric: str | None) -> list[float]:
    """head / base of ``metric`` (latency for A/A) in each load pair of the pair whose head run is ``head``."""
    pair = head.name.split("_ab-", 1)[1].removesuffix("-head.json")
    base = next(head.parent.glob(f"*_ab-{pair}-base.json"))
    name = metric or "latency_s"
    sides = [json.loads(path.read_text())["benchmarks"] for path in (base, head)]
    ratios = []
    for b, h in zip(*sides, strict=True):
        for lb, lh in zip(b["extra_info"]["llmbench_ab"]["loads"], h["extra_info"]["llmbench_ab"]["loads"],
                          strict=True):  # fmt: skip
            if lb.get(name) and lh.get(name):
                ratios.append(lh[name] / lb[name])
    return ratios


def loads_run(head: Path) -> int:
    """The load pairs the pair ran (more than --loads where extra ones were needed)."""
    benchmarks = json.loads(head.read_text())["benchmarks"]
    return max((len(b["extra_info"]["llmbench_ab"]["loads"]) for b in benchmarks), default=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20, help="pairs per scenario. Default: %(default)r")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma list. Default: %(default)s")
    parser.add_argument("--first-pair", type=int, default=0,
                        help="index (and seed) of the first pair, to add pairs to an earlier --out; "
                        "with --summarize, only the pairs from this index on")  # fmt: skip
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--max-loads", type=int, default=None,
                        help="llmbench ab --max-loads (extra load pairs where the loads disagree). "
                        "Default: llmbench ab's own (the run of 2026-11-30 predates it: exactly --loads)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("results/ab-catch-rate"))
    parser.add_argument("--summarize", action="store_true", help="only re-decide the saved pairs and print the table")
    parser.add_argument("pytest_args", nargs="*", help="after --: the pytest arguments of each llmbench ab")
    args = parser.parse_args()
    if args.summarize:
        print("\n".join(summarize(args.out, args.first_pair)))
        return 0
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    runs = (args.out / "runs").resolve()
    log = (args.out / "results.jsonl").open("a")
    llmbench = str(Path(sys.executable).parent / "llmbench")
    with tempfile.TemporaryDirectory(prefix="ab-catch-rate-") as scratch:
        repo = scratch_repo(Path(scratch), scenarios)
        for index in range(args.first_pair, args.first_pair + args.pairs):
            for name in scenarios:
                head = "base" if name == "aa" else f"inject-{name}"
                extra = [] if args.max_loads is None else [f"--max-loads={args.max_loads}"]
                command = [llmbench, "ab", "base", head, f"--loads={args.loads}", *extra, f"--rounds={args.rounds}",
                           f"--seed={index}", "--", *args.pytest_args, f"--benchmark-storage={runs}",
                           "--llmbench-quality-items=0"]  # fmt: skip
                started = time.monotonic()
                done = subprocess.run(command, cwd=repo, capture_output=True, text=True)
                seconds = time.monotonic() - started
                heads = sorted((runs / machine_id_here()).glob("*-head.json"))
                row: dict[str, object] = {"scenario": name, "pair": index, "exit": done.returncode, "seconds": seconds}
                if done.returncode in (0, 1) and heads:
                    row["ab"], row["gate"], row["ab_cell"], row["gate_cell"] = flagged(runs, heads[-1], target(name))
                    row["head_run"] = heads[-1].name
                    row["loads_run"] = loads_run(heads[-1])
                else:
                    row["error"] = done.stderr[-2000:]
                log.write(json.dumps(row) + "\n")
                log.flush()
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
