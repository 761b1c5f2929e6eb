"""The first-baseline allowance (docs/gate.md, *A first baseline*): how far one process's speed figures of
unchanged code move from another's, made minutes to hours apart on the shared development machines.

Usage (from the repository root; no model runs, about 10 s)::

    .venv/bin/python scripts/gate/first_baseline_allowance.py [ARCHIVE ...]

The data are the saved pairs of ``scripts/ab/catch_rate.py`` (``scripts/ab/data/*.tar.xz`` by default):
every load of every pair is a fresh worker process that times 5 rounds of one combination, as one
combination of a one-sided ``make bench`` run does, and its figures (the medians of its rounds) are
saved per load. Unchanged code: every load of the base side, and of the head side of the A/A pairs
(``results.jsonl`` names each head run's scenario; the injected sides are left out). Two loads of one
pair ran interleaved within a minute and are not compared with each other.

Left out, and counted:

- *busy* loads: their round times spread beyond the latency rule's threshold (robust CV,
  ``llmbench.gate.statistics.busy_rounds``), the same test that leaves a saved run out of the drift
  range and makes a current run's speed verdict ``noisy``, so the gate never judges such a run;
- *contended* loads: their TTFT (prefill, compute-bound on both threads) is above ``CONTENDED`` times
  the archive's median TTFT: another process held one of the machine's two cores for the whole load
  (the modes at x1.4 to x2.2 of the median here; steady loads stayed below x1.25). No allowance that
  still lets a 33% slowdown fail can cover them: that machine state is what ``llmbench ab`` is for.
  Their share, and the false-alarm rate with them included, are printed.

Per gated timed metric, the change of one load against another in the metric's bad direction
(``b/a - 1`` for times, ``1 - b/a`` for rates), over every ordered pair of kept loads of different
pairs in one archive. The rule: the allowance is the largest, over the metrics and archives, of the
99th percentile of that change, rounded up to a whole percent. A percentile, not the largest change
seen: pairs share loads, so the largest is one extreme load, and what a user needs is how often
unchanged code would fail, which the last columns print (share of pairs beyond threshold +
allowance). Exit status 1 when ``llmbench.gate.rules.FIRST_BASELINE_ALLOWANCE`` differs from the
allowance decided.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import math
import statistics
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmbench.gate.rules import DEFAULT_RULES, FIRST_BASELINE_ALLOWANCE
from llmbench.gate.statistics import busy_rounds

REPO = Path(__file__).resolve().parents[2]
ARCHIVES = sorted((REPO / "scripts" / "ab" / "data").glob("*.tar.xz"))
#: A load whose TTFT is above this many times its archive's median ran beside a competing process.
CONTENDED = 1.3
#: The percentile of the pairwise changes the allowance covers.
PERCENTILE = 99
#: The gated timed figures of a generate benchmark (load_s is printed, not given an allowance).
METRICS = ("latency_s", "ttft_s", "prefill_tok_s", "decode_tok_s_per_seq", "decode_tok_s_total")
SHOWN = (*METRICS, "load_s")


@dataclass(frozen=True)
class Load:
    pair: str
    figures: Mapping[str, float]
    busy: bool


def unchanged_loads(archive: Path) -> list[Load]:
    """The loads of unchanged code in one archive of ``catch_rate.py`` output."""
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        scenarios: dict[str, str] = {}
        for name, member in members.items():
            if name.endswith("results.jsonl"):
                for line in _text(tar, member).splitlines():
                    if line.strip():
                        row = json.loads(line)
                        scenarios[str(row.get("head_run"))] = str(row.get("scenario"))
        loads: list[Load] = []
        for name, member in sorted(members.items()):
            if not name.endswith(".json"):
                continue
            run = json.loads(_text(tar, member))
            marks = run.get("machine_info", {}).get("llmbench_ab", {})
            side = marks.get("side")
            if side != "base" and not (side == "head" and scenarios.get(Path(name).name) == "aa"):
                continue
            for bench in run.get("benchmarks", []):
                loads.extend(_loads(bench, str(marks.get("pair"))))
    return loads


def _text(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    handle = tar.extractfile(member)
    assert handle is not None
    return io.TextIOWrapper(handle, encoding="utf-8").read()


def _loads(bench: Mapping[str, Any], pair: str) -> Iterable[Load]:
    extra = bench.get("extra_info", {})
    marks = extra.get("llmbench_ab", {})
    rounds = extra.get("metrics", {}).get("latency_s", {}).get("samples", [])
    round_loads = marks.get("round_loads", [])
    threshold = DEFAULT_RULES["latency_s"].relative
    for index, figures in enumerate(marks.get("loads", [])):
        own = [float(x) for x, k in zip(rounds, round_loads, strict=False) if k == index]
        kept = {k: float(v) for k, v in figures.items() if isinstance(v, int | float) and math.isfinite(v) and v > 0}
        yield Load(pair, kept, busy_rounds(own, threshold))


def bad_changes(loads: Sequence[Load], metric: str) -> list[float]:
    """The change of ``b`` against ``a`` in the metric's bad direction, every ordered pair of two pairs."""
    lower_is_better = DEFAULT_RULES[metric].direction == "lower"
    values = [(load.pair, load.figures[metric]) for load in loads if metric in load.figures]
    return sorted(
        (b / a - 1) if lower_is_better else (1 - b / a)
        for (pa, a), (pb, b) in itertools.permutations(values, 2)
        if pa != pb
    )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of already sorted values."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def share_beyond(changes: Sequence[float], bound: float) -> float:
    return sum(c > bound for c in changes) / len(changes) if changes else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archives", nargs="*", type=Path, default=ARCHIVES, metavar="ARCHIVE")
    args = parser.parse_args()
    kept: dict[str, list[Load]] = {}
    everything: dict[str, list[Load]] = {}
    for archive in args.archives:
        loads = unchanged_loads(archive)
        middle = statistics.median(load.figures["ttft_s"] for load in loads)
        contended = [load for load in loads if load.figures["ttft_s"] > CONTENDED * middle]
        busy = [load for load in loads if load.busy and load not in contended]
        name = archive.name.removesuffix(".tar.xz")
        kept[name] = [load for load in loads if load not in contended and not load.busy]
        everything[name] = loads
        print(f"{name}: {len(loads)} loads of unchanged code in {len({load.pair for load in loads})} pairs; left out "
              f"{len(contended)} contended (TTFT above x{CONTENDED:g} the median, {len(contended) / len(loads):.1%}), "
              f"{len(busy)} busy (latency rounds spread beyond 5%); {len(kept[name])} kept")  # fmt: skip
    print()
    print(f"change of one load against another in the bad direction, pairs of kept loads "
          f"(p{PERCENTILE}: the rule's percentile)")  # fmt: skip
    print(f"{'archive':32} {'metric':22} {'pairs':>7} {'p50':>7} {'p90':>7} {'p99':>7} {'largest':>8}")
    decided_from: list[tuple[float, str, str]] = []
    for name, loads in kept.items():
        for metric in SHOWN:
            changes = bad_changes(loads, metric)
            if not changes:
                continue
            p = [percentile(changes, q) for q in (50, 90, PERCENTILE)]
            print(f"{name:32} {metric:22} {len(changes):7d} " + " ".join(f"{x:+7.1%}" for x in p)
                  + f" {changes[-1]:+8.1%}")  # fmt: skip
            if metric in METRICS:
                decided_from.append((p[2], name, metric))
    top, where, which = max(decided_from)
    allowance = math.ceil(round(top * 100, 6)) / 100
    print()
    print(f"rule: the largest p{PERCENTILE} over {', '.join(METRICS)} and the archives, rounded up to a whole "
          f"percent: {top:.2%} ({which}, {where}) -> allowance {allowance:.0%}")  # fmt: skip
    print()
    print("share of pairs of unchanged code beyond threshold + allowance (a false 'regressed' on a first baseline):")
    print(f"{'archive':32} {'metric':22} {'bound':>6} {'kept loads':>11} {'all loads':>10}")
    for name in kept:
        for metric in METRICS:
            threshold = DEFAULT_RULES[metric].relative or 0.0
            bound = threshold + allowance
            steady = share_beyond(bad_changes(kept[name], metric), bound)
            every = share_beyond(bad_changes(everything[name], metric), bound)
            print(f"{name:32} {metric:22} {bound:6.0%} {steady:11.2%} {every:10.2%}")
    print()
    status = "matches" if math.isclose(FIRST_BASELINE_ALLOWANCE, allowance) else "DIFFERS"
    print(f"llmbench.gate.rules.FIRST_BASELINE_ALLOWANCE = {FIRST_BASELINE_ALLOWANCE:g}: {status}")
    return 0 if status == "matches" else 1


if __name__ == "__main__":
    raise SystemExit(main())
