"""Re-create the gate's A/A and known-fault measurements (docs/gate-validation.md).

1. Measure: ROUNDS times, one unchanged benchmark session, then one per fault of llmbench.testing.faults
   (given to that session and its model workers through the environment: ``LLMBENCH_FAULTS`` and the
   faults' ``sitecustomize`` on ``PYTHONPATH``), interleaved; each saved with pytest-benchmark into OUT/<kind>/.
2. Replay: every comparison ``llmbench compare`` would make (the same functions: ``choose_baseline`` and
   ``compare_runs`` under the gate's one-sided rules), for each baseline and drift history: unchanged run k
   against the history of unchanged runs before it (A/A), and each faulted run of round k against the
   unchanged runs up to k (as if it were the next one saved). Per scenario: runs that fail the gate, and
   runs flagged on each metric the fault moves.
3. Print the tables: runs flagged per comparison and metric, and the noise the unchanged runs showed.

    .venv/bin/python scripts/gate_validation/aa_and_slowdowns.py --rounds 20 --out gate-validation \\
        -- --llmbench-precision=q4_k_m --llmbench-batch-size=1 --llmbench-quality-items=8
    .venv/bin/python scripts/gate_validation/aa_and_slowdowns.py --replay-only --out gate-validation
    .venv/bin/python scripts/gate_validation/aa_and_slowdowns.py --replay-only \\
        --out scripts/gate_validation/data/gate-validation-2026-12-07.tar.xz

``--replay-only`` reads OUT or a committed ``.tar.xz`` of it (unpacked for the duration).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmbench.gate import choose_baseline, compare_runs, parse_baseline
from llmbench.runs import load_run
from llmbench.testing.faults import ENV, environment, parse_faults

REPO = Path(__file__).resolve().parents[2]
MANIFEST = "manifest.jsonl"
UNCHANGED = "unchanged"
#: Scenario -> the faults of its sessions.
SCENARIOS = {
    **{f"decode{p}": f"decode_slow={p / 100}" for p in (2, 3, 5, 10)},
    **{f"prefill{p}": f"prefill_slow={p / 100}" for p in (2, 3, 5, 10)},
    # every engine step (prompt and generated tokens) slower: every timed figure moves by the share
    **{f"steps{p}": f"slow={p / 100}" for p in (5, 10, 15, 20)},
    "mem5": "hold_share=0.05",
    "mem64": "hold_mib=64",
    "quality": "degrade=0.5",
}
#: The metrics each kind of fault moves (docs/fault-injection.md).
METRICS = ("latency_s", "ttft_s", "prefill_tok_s", "decode_tok_s_total", "peak_rss_bytes", "rougeLsum")


def moved(scenario: str) -> tuple[str, ...]:
    if scenario.startswith("slowdown-"):  # the runs of the sleep-after-generate plugin of the time
        return ("latency_s",)
    faults = parse_faults(SCENARIOS.get(scenario, ""))
    out = ["latency_s", "ttft_s", "prefill_tok_s"] if faults.prefill_slow else []
    out += ["latency_s", "decode_tok_s_total"] if faults.decode_slow else []
    out += ["peak_rss_bytes"] if faults.hold_mib or faults.hold_share else []
    out += ["rougeLsum"] if faults.degrade else []
    return tuple(dict.fromkeys(out))


def kind_of(entry: dict[str, Any]) -> str:
    """An entry's scenario (manifests of the plugin of the time have a slowdown share instead)."""
    if "scenario" in entry:
        return str(entry["scenario"])
    share = float(entry["share"])
    return UNCHANGED if share == 0 else f"slowdown-{round(share * 100):02d}"


def session(out: Path, scenario: str, rounds_done: int, pytest_args: Sequence[str]) -> Path:
    """One benchmark session like ``make bench`` (saved, not gated), with ``scenario``'s faults; the saved run."""
    storage = out / scenario
    before = set(storage.glob("*/*.json"))
    env = {key: value for key, value in os.environ.items() if key != ENV}
    if scenario != UNCHANGED:
        env.update(environment(SCENARIOS[scenario], base=env))
    command = [
        sys.executable, "-m", "pytest", "benchmarks", "-q", "-p", "no:cacheprovider",
        "--benchmark-autosave", "--benchmark-save-data", f"--benchmark-storage=file://{storage}",
        f"--llmbench-outputs-dir={out / 'outputs' / f'{scenario}-{rounds_done + 1:03d}'}", *pytest_args,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(
            f"aa_and_slowdowns.py: the session {' '.join(command)} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}"
        )
    saved = sorted(set(storage.glob("*/*.json")) - before)
    if len(saved) != 1:
        sys.exit(f"aa_and_slowdowns.py: expected one saved run in {storage}, found {saved}")
    return saved[0]


def measure(out: Path, rounds: int, scenarios: Sequence[str], pytest_args: Sequence[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # Resumable: rounds whose unchanged session is in the manifest are not measured again.
    manifest = out / MANIFEST
    entries = [json.loads(line) for line in manifest.read_text().splitlines()] if manifest.exists() else []
    done = sum(1 for entry in entries if kind_of(entry) == UNCHANGED)
    for k in range(done, rounds):
        for scenario in (UNCHANGED, *scenarios):
            load = os.getloadavg()[0]
            started = time.time()
            path = session(out, scenario, k, pytest_args)
            entry = {"round": k + 1, "scenario": scenario, "faults": SCENARIOS.get(scenario, ""),
                     "file": str(path.relative_to(out)), "load_1min": load,
                     "seconds": round(time.time() - started, 1)}  # fmt: skip
            with manifest.open("a") as file:
                file.write(json.dumps(entry) + "\n")
            print(f"round {k + 1}/{rounds} {scenario}: {path.name} ({entry['seconds']} s, load {load:.1f})")


def compare(baseline: str, current: Path, history: int) -> tuple[bool, set[str], str]:
    """What ``llmbench compare --drift-history HISTORY BASELINE CURRENT`` decides (the same functions): whether
    the gate fails, the metrics it flags, and its headline."""
    storage = current.parent.parent
    candidates = sorted(p for p in current.parent.glob("*.json") if p != current)
    run = load_run(current)
    chosen = choose_baseline(parse_baseline(baseline, "aa_and_slowdowns.py"), candidates, run.fingerprint,
                             storage=storage, machine_id=current.parent.name, drift_history=history)  # fmt: skip
    verdict = compare_runs(chosen, run)
    flagged = {d.metric for result in verdict.results for d in result.decisions if d.fails}
    return verdict.failed, flagged, (verdict.lines() or [""])[-1]


def after_history(unchanged: Sequence[Path], current: Path, scratch: Path) -> Path:
    """A storage holding ``unchanged`` and then ``current``, as the run saved after them."""
    if scratch.exists():
        shutil.rmtree(scratch)
    folder = scratch / unchanged[-1].parent.name
    folder.mkdir(parents=True)
    for path in unchanged:
        shutil.copyfile(path, folder / path.name)
    target = folder / f"{len(unchanged) + 1:04d}_current.json"
    shutil.copyfile(current, target)
    return target


@contextmanager
def saved_data(out: Path) -> Iterator[Path]:
    """``out`` itself, or a committed ``.tar.xz`` of it unpacked for the duration."""
    if out.is_dir():
        yield out
        return
    with tempfile.TemporaryDirectory(prefix="gate-validation-") as tmp, tarfile.open(out) as archive:
        archive.extractall(tmp, filter="data")
        [manifest] = Path(tmp).rglob(MANIFEST)
        yield manifest.parent


def replay(out: Path, baselines: Sequence[str], histories: Sequence[int], log_path: Path) -> None:
    entries = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines() if line.strip()]
    unchanged = [out / e["file"] for e in sorted(entries, key=lambda e: e["round"]) if kind_of(e) == UNCHANGED]
    scenarios = list(dict.fromkeys(kind_of(e) for e in entries if kind_of(e) != UNCHANGED))
    faulted = {(e["round"], kind_of(e)): out / e["file"] for e in entries if kind_of(e) != UNCHANGED}
    header = ["baseline", "drift history", "unchanged runs failed",
              *(f"{s}: failed (on {', '.join(moved(s))})" for s in scenarios)]  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp, log_path.open("w") as log:
        for baseline in baselines:
            # A window is compared only once it is full (window:5: from the 6th unchanged run on).
            need = int(baseline.split(":")[1]) if baseline.startswith("window:") else 1
            for history in histories:
                counts: dict[str, list[int]] = {s: [0, 0, 0] for s in (UNCHANGED, *scenarios)}
                for k in range(need + 1, len(unchanged) + 1):
                    current = after_history(unchanged[: k - 1], unchanged[k - 1], Path(tmp) / "storage")
                    failed, flagged, last = compare(baseline, current, history)
                    tally(counts[UNCHANGED], failed, False, log, f"{baseline} h={history} A/A run {k}: {last}")
                for (k, scenario), path in sorted(faulted.items()):
                    if k < need or k > len(unchanged):
                        continue
                    current = after_history(unchanged[:k], path, Path(tmp) / "storage")
                    failed, flagged, last = compare(baseline, current, history)
                    on_target = bool(flagged & set(moved(scenario)))
                    tally(counts[scenario], failed, on_target, log, f"{baseline} h={history} round {k} {scenario}: "
                          f"{last} (flagged: {', '.join(sorted(flagged)) or 'nothing'})")  # fmt: skip
                cells = [f"{counts[UNCHANGED][0]} of {counts[UNCHANGED][2]}"]
                cells += [f"{counts[s][0]} ({counts[s][1]}) of {counts[s][2]}" for s in scenarios]
                rows.append([f"`{baseline}`", str(history), *cells])
    print(markdown(header, rows))
    print(f"\n(each line of every verdict: {log_path})\n")
    print(noise(unchanged, faulted, entries))


def tally(count: list[int], failed: bool, on_target: bool, log: Any, line: str) -> None:
    count[0] += failed
    count[1] += on_target
    count[2] += 1
    log.write(line + "\n")


def benchmarks(path: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(path.read_text())
    return {b["fullname"]: b for b in data["benchmarks"]}


def metric(benchmark: dict[str, Any], name: str) -> dict[str, Any]:
    value = benchmark.get("extra_info", {}).get("metrics", {}).get(name)
    return value if isinstance(value, dict) else {}


def spread(values: Sequence[float]) -> str:
    return f"{max(values) / min(values) - 1:.1%}" if len(values) > 1 and min(values) > 0 else "n/a"


def noise(unchanged: Sequence[Path], faulted: dict[tuple[int, str], Path], entries: Sequence[Any]) -> str:
    """Per benchmark: how much unchanged runs moved, and the change each fault measured on its first metric."""
    runs = [benchmarks(p) for p in unchanged]
    scenarios = list(dict.fromkeys(s for _, s in faulted))
    header = ["benchmark", "runs", "latency: spread of run medians", "rounds' CV (median)",
              "peak RSS: spread", *(f"{s}: {(moved(s) or ('latency_s',))[-1]}" for s in scenarios)]  # fmt: skip
    rows = []
    for name in runs[0]:
        present = [r[name] for r in runs if name in r]
        medians = [b["stats"]["median"] for b in present]
        cvs = [b["stats"]["stddev"] / b["stats"]["mean"] for b in present if b["stats"]["mean"]]
        rss = [v for b in present if isinstance(v := metric(b, "peak_rss_bytes").get("value"), (int, float))]
        measured = []
        for scenario in scenarios:
            figure = (moved(scenario) or ("latency_s",))[-1]
            changes = []
            for (k, s), path in faulted.items():
                if s != scenario or name not in runs[k - 1] or name not in (faulty := benchmarks(path)):
                    continue
                before, after = (
                    metric(runs[k - 1][name], figure).get("value"),
                    metric(faulty[name], figure).get("value"),
                )
                if isinstance(before, (int, float)) and isinstance(after, (int, float)) and before:
                    changes.append(after / before - 1)
            measured.append(f"{statistics.median(changes):+.1%}" if changes else "n/a")
        cv = f"{statistics.median(cvs):.1%}" if cvs else "n/a"
        rows.append([f"`{name.split('::')[-1]}`", str(len(present)), spread(medians), cv, spread(rss), *measured])
    loads = [e["load_1min"] for e in entries]
    return markdown(header, rows) + (
        f"\n\n1-minute load average at the start of each session: {min(loads):.1f} to {max(loads):.1f} "
        f"(median {statistics.median(loads):.1f}), {len(entries)} sessions."
    )


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20, help="unchanged sessions (and of each fault). Default: 20")
    parser.add_argument("--faults", default=",".join(SCENARIOS),
                        help="faulted sessions' scenarios, comma list ('' for none). Default: %(default)s")  # fmt: skip
    parser.add_argument("--baselines", default="last,window:5", help="BASELINE arguments. Default: %(default)s")
    parser.add_argument("--histories", default="1,5,10", help="--drift-history values. Default: %(default)s")
    parser.add_argument("--out", type=Path, default=Path("gate-validation"), help="Default: %(default)s")
    parser.add_argument("--replay-only", action="store_true", help="compare the saved runs in OUT, measure nothing")
    parser.add_argument("pytest_args", nargs="*", help="after --: arguments for every benchmark session")
    args = parser.parse_args(argv)
    scenarios = [s.strip() for s in args.faults.split(",") if s.strip()]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"--faults: unknown {unknown}; known: {', '.join(SCENARIOS)}")
    out = args.out.resolve()
    if not args.replay_only:
        measure(out, args.rounds, scenarios, args.pytest_args)
    # each line of every verdict: beside the runs, or for an archive in the temporary folder
    log_path = out / "replay.log" if out.is_dir() else Path(tempfile.gettempdir()) / "gate-validation-replay.log"
    with saved_data(out) as folder:
        baselines, histories = (
            [b.strip() for b in args.baselines.split(",")],
            [int(h) for h in args.histories.split(",")],
        )
        replay(folder, baselines, histories, log_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
