"""Re-create the gate's A/A and injected-change measurements (docs/gate-validation.md).

1. Measure: ROUNDS times, one unchanged benchmark session, then one per injected slowdown
   (``slowdown_plugin.py``), interleaved; each saved with pytest-benchmark into OUT/<kind>/.
2. Replay: every comparison ``llmbench compare`` would make, for each baseline and drift history:
   unchanged run k against the history of unchanged runs before it (A/A), and the slowed runs of
   round k against the unchanged runs up to k (as if the slowed run were the next one saved).
3. Print the tables: runs flagged per comparison, and the noise the unchanged runs showed.

    .venv/bin/python scripts/gate_validation/aa_and_slowdowns.py --rounds 20 --out gate-validation \\
        -- --llmbench-precision=q4_k_m --llmbench-batch-size=1 --llmbench-quality-items=0
    .venv/bin/python scripts/gate_validation/aa_and_slowdowns.py --replay-only --out gate-validation
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MANIFEST = "manifest.jsonl"
UNCHANGED = "unchanged"


def kind_of(share: float) -> str:
    return UNCHANGED if share == 0 else f"slowdown-{round(share * 100):02d}"


def in_process_args() -> list[str]:
    """Models in the pytest process, where the plugin wraps them (every session alike, injected or not)."""
    help_text = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=REPO, capture_output=True, text=True)
    return ["--llmbench-isolation=none"] if "--llmbench-isolation" in help_text.stdout else []


def session(out: Path, share: float, rounds_done: int, pytest_args: Sequence[str]) -> Path:
    """One benchmark session like ``make bench`` (saved, not gated); returns the saved run file."""
    storage = out / kind_of(share)
    before = set(storage.glob("*/*.json"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    command = [
        sys.executable, "-m", "pytest", "benchmarks", "-q", "-p", "no:cacheprovider",
        "--benchmark-autosave", "--benchmark-save-data", f"--benchmark-storage=file://{storage}",
        f"--llmbench-outputs-dir={out / 'outputs' / f'{kind_of(share)}-{rounds_done + 1:03d}'}",
        "-p", "slowdown_plugin", f"--gate-validation-slowdown={share}", *pytest_args,
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


def measure(out: Path, rounds: int, shares: Sequence[float], pytest_args: Sequence[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    pytest_args = [*in_process_args(), *pytest_args]
    # Resumable: rounds whose unchanged session is in the manifest are not measured again.
    manifest = out / MANIFEST
    entries = [json.loads(line) for line in manifest.read_text().splitlines()] if manifest.exists() else []
    done = sum(1 for entry in entries if entry["share"] == 0)
    for k in range(done, rounds):
        for share in (0.0, *shares):
            load = os.getloadavg()[0]
            started = time.time()
            path = session(out, share, k, pytest_args)
            entry = {"round": k + 1, "share": share, "file": str(path.relative_to(out)), "load_1min": load,
                     "seconds": round(time.time() - started, 1)}  # fmt: skip
            with manifest.open("a") as file:
                file.write(json.dumps(entry) + "\n")
            print(f"round {k + 1}/{rounds} {kind_of(share)}: {path.name} ({entry['seconds']} s, load {load:.1f})")


def compare(baseline: str, current: Path, history: int) -> tuple[int, str]:
    """``llmbench compare`` in this process: its exit status and its last line."""
    from llmbench.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["compare", "--drift-history", str(history), "--storage", str(current.parent.parent),
                       baseline, str(current)])  # fmt: skip
    lines = (stdout.getvalue() + stderr.getvalue()).strip().splitlines()
    return status, lines[-1] if lines else ""


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


def replay(out: Path, baselines: Sequence[str], histories: Sequence[int]) -> None:
    entries = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines() if line.strip()]
    unchanged = [out / e["file"] for e in sorted(entries, key=lambda e: e["round"]) if e["share"] == 0]
    shares = sorted({e["share"] for e in entries if e["share"] > 0})
    slowed = {(e["round"], e["share"]): out / e["file"] for e in entries if e["share"] > 0}
    header = ["baseline", "drift history", "unchanged runs flagged", *(f"{s:.0%} slower" for s in shares)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, (out / "replay.log").open("w") as log:
        for baseline in baselines:
            # A window is compared only once it is full (window:5: from the 6th unchanged run on).
            need = int(baseline.split(":")[1]) if baseline.startswith("window:") else 1
            for history in histories:
                counts: dict[float, list[int]] = {s: [0, 0] for s in (0.0, *shares)}
                for k in range(need + 1, len(unchanged) + 1):
                    current = after_history(unchanged[: k - 1], unchanged[k - 1], Path(tmp) / "storage")
                    status, last = compare(baseline, current, history)
                    tally(counts[0.0], status, log, f"{baseline} h={history} A/A run {k}: {last}")
                for (k, share), path in sorted(slowed.items()):
                    if k < need or k > len(unchanged):
                        continue
                    current = after_history(unchanged[:k], path, Path(tmp) / "storage")
                    status, last = compare(baseline, current, history)
                    tally(counts[share], status, log, f"{baseline} h={history} round {k} {share:.0%}: {last}")
                rows.append([f"`{baseline}`", str(history), *(f"{f} of {n}" for f, n in counts.values())])
    print(markdown(header, rows))
    print(f"\n(each line of every verdict: {out / 'replay.log'})\n")
    print(noise(unchanged, slowed, entries))


def tally(count: list[int], status: int, log: Any, line: str) -> None:
    if status == 2:
        sys.exit(f"aa_and_slowdowns.py: llmbench compare could not compare: {line}")
    count[0] += status == 1
    count[1] += 1
    log.write(line + "\n")


def benchmarks(path: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(path.read_text())
    return {b["fullname"]: b for b in data["benchmarks"]}


def metric(benchmark: dict[str, Any], name: str) -> dict[str, Any]:
    value = benchmark.get("extra_info", {}).get("metrics", {}).get(name)
    return value if isinstance(value, dict) else {}


def spread(values: Sequence[float]) -> str:
    return f"{max(values) / min(values) - 1:.1%}" if len(values) > 1 and min(values) > 0 else "n/a"


def noise(unchanged: Sequence[Path], slowed: dict[tuple[int, float], Path], entries: Sequence[Any]) -> str:
    """Per benchmark: how much unchanged runs moved, and the slowdown each injection measured."""
    runs = [benchmarks(p) for p in unchanged]
    shares = sorted({share for _, share in slowed})
    header = ["benchmark", "runs", "latency: spread of run medians", "rounds' CV (median)",
              "peak RSS: spread", *(f"measured at {s:.0%}" for s in shares)]  # fmt: skip
    rows = []
    for name in runs[0]:
        present = [r[name] for r in runs if name in r]
        medians = [b["stats"]["median"] for b in present]
        cvs = [b["stats"]["stddev"] / b["stats"]["mean"] for b in present if b["stats"]["mean"]]
        rss = [v for b in present if isinstance(v := metric(b, "peak_rss_bytes").get("value"), (int, float))]
        measured = []
        for share in shares:
            pairs = [
                (runs[k - 1][name], benchmarks(path)[name])
                for (k, s), path in slowed.items()
                if s == share and name in runs[k - 1] and name in benchmarks(path)
            ]
            changes = [slow["stats"]["median"] / base["stats"]["median"] - 1 for base, slow in pairs]
            info = [slow.get("extra_info", {}).get("gate_validation") or {} for _, slow in pairs]
            calls = [pair for i in info for pair in zip(i.get("generate_s", []), i.get("slept_s", []), strict=True)]
            injected = [slept / took for took, slept in calls if took > 0]
            text = f"{statistics.median(changes):+.1%}" if changes else "n/a"
            measured.append(text + (f" (slept {statistics.median(injected):+.1%})" if injected else ""))
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
    parser.add_argument("--rounds", type=int, default=20, help="unchanged sessions (and of each slowdown). Default: 20")
    parser.add_argument("--slowdowns", default="0.05,0.10,0.15,0.20",
                        help="injected slowdowns: shares, comma list ('' for none). Default: %(default)s")  # fmt: skip
    parser.add_argument("--baselines", default="last,window:5", help="BASELINE arguments. Default: %(default)s")
    parser.add_argument("--histories", default="1,5,10", help="--drift-history values. Default: %(default)s")
    parser.add_argument("--out", type=Path, default=Path("gate-validation"), help="Default: %(default)s")
    parser.add_argument("--replay-only", action="store_true", help="compare the saved runs in OUT, measure nothing")
    parser.add_argument("pytest_args", nargs="*", help="after --: arguments for every benchmark session")
    args = parser.parse_args(argv)
    shares = [float(s) for s in args.slowdowns.split(",") if s.strip()]
    out = args.out.resolve()
    if not args.replay_only:
        measure(out, args.rounds, shares, args.pytest_args)
    replay(out, [b.strip() for b in args.baselines.split(",")], [int(h) for h in args.histories.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
