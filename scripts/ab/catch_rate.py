"""Measure llmbench ab against known faults (docs/ab.md): flagged counts per metric, next to the history gate.

Usage (from the repository root, the scale is a parameter)::

    .venv/bin/python scripts/ab/catch_rate.py --pairs 20 --out results/ab-catch-rate -- \\
        benchmarks --llmbench-model=gemma3-270m --llmbench-precision=q4_k_m --llmbench-batch-size=1
    .venv/bin/python scripts/ab/catch_rate.py --summarize --out scripts/ab/data/ab-catch-rate-DATE.tar.xz

A scratch clone of the repository's HEAD is measured against itself; each scenario gives the head side's
workers a fault of llmbench.testing.faults through their environment (``llmbench ab --head-env``): the
engine's decode or prompt step, or both (``steps``), slowed by 2, 3, 5 or 10% of its own duration, memory
held (+5% of RSS, +64 MiB), half the outputs damaged (quality, with quality items), or nothing (A/A). Scenarios run
round-robin (A/A, then each fault, then A/A again...) so slow drift of the machine spreads over all of them.
Writes OUT/results.jsonl (one line per pair) and the saved pairs under OUT/runs.

``--summarize`` re-decides every saved pair with the current code, one table per metric: how often
``llmbench ab`` flagged the metric, and how often the one-sided history gate did on the same head run, given
what a history gate has: a history of base runs made at other times (the base runs of the pairs saved before
this one, never this pair's own), the latest of them as the baseline, and the same thresholds as
``llmbench ab`` (its paired rules), so the contrast measures interleaving, not the threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmbench.ab.verdict import compare_pair
from llmbench.gate import choose_baseline, compare_runs, parse_baseline
from llmbench.gate.rules import PAIRED_RULES
from llmbench.runs import load_run
from llmbench.testing.faults import ENV, parse_faults

REPO = Path(__file__).resolve().parents[2]
#: name -> the head side's faults ("" for A/A: both sides unchanged).
SCENARIOS = {
    "aa": "",
    **{f"decode{p}": f"decode_slow={p / 100}" for p in (2, 3, 5, 10)},
    **{f"prefill{p}": f"prefill_slow={p / 100}" for p in (2, 3, 5, 10)},
    # every engine step (prompt and generated tokens) slower: each timed figure moves by the share
    **{f"steps{p}": f"slow={p / 100}" for p in (2, 3, 5, 10)},
    "mem5": "hold_share=0.05",
    "mem64": "hold_mib=64",
    "quality": "degrade=0.5",
}
#: The metrics a table is made for, in order.
METRICS = ("latency_s", "ttft_s", "prefill_tok_s", "decode_tok_s_total", "peak_rss_bytes", "rougeLsum")
#: Scenarios of the runs of 2026-11-30 and 2026-12-01 (scripts/ab/data), made with the injector of the time:
#: a sleep after each generate call (latency only) and memory held by the worker. Read by --summarize only.
LEGACY = {"slow3": "", "slow5": "", "slow10": "", "slow20": "", "mem5": "", "mem64": ""}
#: How llmbench ab runs a pair (``--modes``): its options. ``alternate``: the rounds of a pair one after the
#: other (the default); ``duet``: both at once on CPUs of their own (``--duet``).
MODES = {"alternate": (), "duet": ("--duet",)}
#: Quality items of a scenario's pairs: the quality pass runs only where quality is what the fault moves.
QUALITY_ITEMS = {"quality": 8}


def moved(scenario: str) -> tuple[str, ...]:
    """The metrics a scenario's fault moves (docs/fault-injection.md); none for A/A."""
    spec = SCENARIOS.get(scenario, "")
    if scenario in LEGACY and scenario.startswith("slow"):
        return ("latency_s",)
    if scenario.startswith("mem"):
        return ("peak_rss_bytes",)
    faults = parse_faults(spec)
    out = []
    if faults.prefill_slow:
        out += ["latency_s", "ttft_s", "prefill_tok_s"]
    if faults.decode_slow:
        out += ["latency_s", "decode_tok_s_total"]
    if faults.degrade:
        out += ["rougeLsum"]
    return tuple(dict.fromkeys(out))


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def base_of(head: Path) -> Path:
    """The base run of the pair whose head run is ``head`` (saved just before it, under the same pair id)."""
    pair = head.name.split("_ab-", 1)[1].removesuffix("-head.json")
    return next(head.parent.glob(f"*_ab-{pair}-base.json"))


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


def decisions(verdict: Any) -> dict[str, str]:
    """metric -> verdict (the worst over the combinations: regressed before noisy before the rest)."""
    order = {"regressed": 0, "noisy": 1, "improved": 2, "unchanged": 3}
    out: dict[str, str] = {}
    for result in verdict.results:
        for decision in result.decisions:
            if decision.metric not in out or order.get(decision.verdict, 4) < order.get(out[decision.metric], 4):
                out[decision.metric] = decision.verdict
    return out


def decide(head: Path, earlier_bases: Sequence[Path], history: int = 10) -> dict[str, dict[str, str]]:
    """``llmbench ab``'s verdict per metric on the pair whose head run is ``head``, and the one-sided history
    gate's on the same head run against ``earlier_bases`` (base runs of other pairs, saved before it; oldest
    first), under the same rules. The gate's verdicts are empty where there is no earlier base run."""
    base = base_of(head)
    found = {"ab": decisions(compare_pair(load_run(base), load_run(head)))}
    found["gate"] = {}
    if earlier_bases:
        with tempfile.TemporaryDirectory(prefix="ab-history-") as plain:
            # The gate never takes a run saved by llmbench ab as history: copies without the pair's marks stand
            # for the same rounds saved by one-sided runs.
            folder = Path(plain) / head.parent.name
            runs = [unpaired(path, folder) for path in earlier_bases]
            head_plain = load_run(unpaired(head, folder))
            baseline = choose_baseline(parse_baseline("last", "catch_rate.py"), runs, head_plain.fingerprint,
                                       storage=Path(plain), machine_id=folder.name, drift_history=history)  # fmt: skip
            found["gate"] = decisions(compare_runs(baseline, head_plain, rules=PAIRED_RULES))
    return found


def load_ratios(head: Path, metric: str) -> list[float]:
    """head / base of ``metric`` in each load pair of the pair whose head run is ``head``."""
    base = base_of(head)
    sides = [json.loads(path.read_text())["benchmarks"] for path in (base, head)]
    ratios = []
    for b, h in zip(*sides, strict=True):
        for lb, lh in zip(b["extra_info"]["llmbench_ab"]["loads"], h["extra_info"]["llmbench_ab"]["loads"],
                          strict=True):  # fmt: skip
            if lb.get(metric) and lh.get(metric):
                ratios.append(lh[metric] / lb[metric])
    return ratios


def loads_run(head: Path) -> int:
    """The load pairs the pair ran (more than --loads where extra ones were needed)."""
    benchmarks = json.loads(head.read_text())["benchmarks"]
    return max((len(b["extra_info"]["llmbench_ab"]["loads"]) for b in benchmarks), default=0)


@contextmanager
def saved_data(out: Path) -> Iterator[Path]:
    """``out`` itself, or a committed ``.tar.xz`` of it unpacked for the duration."""
    if out.is_dir():
        yield out
        return
    with tempfile.TemporaryDirectory(prefix="ab-catch-rate-") as tmp, tarfile.open(out) as archive:
        archive.extractall(tmp, filter="data")
        [results] = Path(tmp).rglob("results.jsonl")
        yield results.parent


def mode_of(row: Mapping[str, Any]) -> str:
    """The mode a saved row's pair ran in (rows from before ``--modes`` ran alternating)."""
    return str(row.get("mode", "alternate"))


def summarize(out: Path, first_pair: int = 0, mode: str = "alternate") -> list[str]:
    """Re-decide every saved pair of ``mode`` (from index ``first_pair`` on) with the current code: one
    markdown table per metric. The history gate's history: base runs of the same mode only."""
    with saved_data(out) as folder:
        every = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines() if line.strip()]
        rows = [row for row in every if mode_of(row) == mode]
        heads = {path.name: path for path in (folder / "runs").rglob("*-head.json")}
        same_mode = {base_of(heads[str(r["head_run"])]).name for r in rows if str(r.get("head_run")) in heads}
        bases = sorted((p for p in (folder / "runs").rglob("*-base.json") if p.name in same_mode), key=lambda p: p.name)
        tallies: dict[str, dict[str, dict[str, Any]]] = {metric: {} for metric in METRICS}
        for row in rows:
            name = str(row["scenario"])
            if int(row["pair"]) < first_pair:
                continue
            head = heads.get(str(row.get("head_run")))
            own = base_of(head).name if head is not None else ""
            # A history made at other times: the base runs saved before this pair, of other pairs.
            earlier = [p for p in bases if head is not None and p.name < own]
            found = decide(head, earlier) if head is not None else {"ab": {}, "gate": {}}
            extra = loads_run(head) - int(row.get("loads", 3)) if head is not None else 0
            for metric in METRICS:
                tally = tallies[metric].setdefault(name, {"pairs": 0, "errors": 0, "ratios": [], "extended": 0})
                tally["pairs"] += 1
                if head is None:
                    tally["errors"] += 1
                    continue
                tally["extended"] += extra > 0
                tally["ratios"] += load_ratios(head, metric)
                for side in ("ab", "gate"):
                    verdict = found[side].get(metric, "n/a" if side == "ab" or earlier else "no history")
                    tally[f"{side} {verdict}"] = tally.get(f"{side} {verdict}", 0) + 1
        return [line for metric in METRICS for line in table(metric, tallies[metric])]


def table(metric: str, tallies: dict[str, dict[str, Any]]) -> list[str]:
    if not any(t["pairs"] - t["errors"] for t in tallies.values()):
        return []

    def verdicts(tally: dict[str, Any], side: str) -> str:
        kinds = ("regressed", "noisy", "unchanged", "improved", "n/a", "no history")
        return ", ".join(f"{tally[f'{side} {v}']} {v}" for v in kinds if tally.get(f"{side} {v}"))

    lines = [f"#### {metric}", "",
             "| scenario | moves it | pairs | per-load change (min..max) | llmbench ab flagged | its verdicts "
             "| pairs with extra load pairs | history gate flagged | its verdicts | errors |",
             "|---|---|---:|---|---:|---|---:|---:|---|---:|"]  # fmt: skip
    for name, tally in tallies.items():
        ratios = tally["ratios"] or [1.0]
        changes = f"{(min(ratios) - 1) * 100:+.1f}%..{(max(ratios) - 1) * 100:+.1f}%" if tally["ratios"] else "n/a"
        moves = "yes" if metric in moved(name) else "no"
        ab, gate = (f"{tally.get(f'{side} regressed', 0)} | {verdicts(tally, side)}" for side in ("ab", "gate"))
        lines.append(f"| {name} | {moves} | {tally['pairs']} | {changes} | {ab} | {tally['extended']} | {gate} "
                     f"| {tally['errors']} |")  # fmt: skip
    return [*lines, ""]


def measure(args: argparse.Namespace, scenarios: Sequence[str], modes: Sequence[str]) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    runs = (args.out / "runs").resolve()
    with (args.out / "results.jsonl").open("a") as log, tempfile.TemporaryDirectory(prefix="ab-catch-rate-") as tmp:
        repo = Path(tmp) / "repo"
        git(REPO, "clone", "--quiet", "--local", str(REPO), str(repo))
        commit = git(repo, "rev-parse", "HEAD")
        site = repo / "src" / "llmbench" / "testing" / "faults_site"
        for index, name, mode in ((i, n, m) for i in range(args.first_pair, args.first_pair + args.pairs)
                                  for n in scenarios for m in modes):  # fmt: skip
            spec = SCENARIOS[name]
            head_env = ["--head-env", f"{ENV}={spec}", "--head-env", f"PYTHONPATH={site}"] if spec else []
            extra = [] if args.max_loads is None else [f"--max-loads={args.max_loads}"]
            extra += [*MODES[mode], *args.ab_arg]
            # The parent runs the clone's code too (python -c: the clone's root is on sys.path, as the
            # suite's conftest needs), not this working tree's.
            command = [sys.executable, "-c", "import sys; from llmbench.cli import main; sys.exit(main())",
                       "ab", commit, commit, f"--loads={args.loads}", *extra, f"--rounds={args.rounds}",
                       f"--seed={index}", *head_env, "--", *args.pytest_args, f"--benchmark-storage={runs}",
                       f"--llmbench-quality-items={QUALITY_ITEMS.get(name, 0)}"]  # fmt: skip
            env = {key: value for key, value in os.environ.items() if key != ENV}
            env["PYTHONPATH"] = str(repo / "src")
            started = time.monotonic()
            done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, check=False)
            seconds = time.monotonic() - started
            heads = sorted(runs.rglob("*-head.json"), key=lambda p: p.name)
            row: dict[str, object] = {"scenario": name, "faults": spec, "pair": index, "commit": commit,
                                      "exit": done.returncode, "seconds": round(seconds, 1),
                                      "loads": args.loads, "mode": mode, "ab_args": args.ab_arg}  # fmt: skip
            if done.returncode in (0, 1) and heads:
                row["head_run"] = heads[-1].name
                row["loads_run"] = loads_run(heads[-1])
                row["ab"] = decisions(compare_pair(load_run(base_of(heads[-1])), load_run(heads[-1])))
            else:
                row["error"] = done.stderr[-2000:]
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(json.dumps(row), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20, help="pairs per scenario. Default: %(default)r")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma list. Default: %(default)s")
    parser.add_argument("--first-pair", type=int, default=0,
                        help="index (and seed) of the first pair, to add pairs to an earlier --out; "
                        "with --summarize, only the pairs from this index on")  # fmt: skip
    parser.add_argument("--loads", type=int, default=3, help="llmbench ab --loads. Default: %(default)r")
    parser.add_argument("--max-loads", type=int, default=None,
                        help="llmbench ab --max-loads. Default: llmbench ab's own")  # fmt: skip
    parser.add_argument("--modes", default="alternate",
                        help=f"comma list of {', '.join(MODES)}: each pair index runs every scenario in every "
                        "mode, interleaved (with --summarize: the one mode whose pairs are tabled). "
                        "Default: %(default)s")  # fmt: skip
    parser.add_argument("--ab-arg", action="append", default=[], metavar="OPTION",
                        help="another option of each llmbench ab, e.g. --ab-arg=--per-load=median (repeatable). "
                        "Default: none")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5, help="llmbench ab --rounds. Default: %(default)r")
    parser.add_argument("--out", type=Path, default=Path("results/ab-catch-rate"),
                        help="the results folder (with --summarize also a committed .tar.xz of one). "
                        "Default: %(default)s")  # fmt: skip
    parser.add_argument("--summarize", action="store_true", help="only re-decide the saved pairs and print the tables")
    parser.add_argument("pytest_args", nargs="*", help="after --: the pytest arguments of each llmbench ab")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if [m for m in modes if m not in MODES] or not modes or (args.summarize and len(modes) != 1):
        parser.error(f"--modes {args.modes!r}: a comma list of {', '.join(MODES)} (one with --summarize)")
    if args.summarize:
        print("\n".join(summarize(args.out, args.first_pair, modes[0])))
        return 0
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"--scenarios: unknown {unknown}; known: {', '.join(SCENARIOS)}")
    measure(args, scenarios, modes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
