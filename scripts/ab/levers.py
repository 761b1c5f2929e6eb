"""What each lever of llmbench ab's power buys, re-decided from saved pairs of one fixed design (docs/ab.md).

The pairs must have run a fixed number of load pairs and rounds (``scripts/ab/catch_rate.py --loads 6
--max-loads 6 --rounds 3``: no extra load pairs). Each smaller design is a subset of what was measured, in
the order it ran: the first ROUNDS timed rounds of each load pair and the first LOADS load pairs. Where
the first LOADS leave latency, TTFT, prefill, decode or peak RSS ``noisy``, the next load pair is added, up
to MAX, as llmbench ab does (it checks every paired figure; these five are the ones the tables show). The
levers:

- rounds per load pair (``--rounds``), load pairs (``--loads``, ``--max-loads``);
- the per-load estimator: ``median`` of the load pair's rounds (llmbench ab's) or ``best`` (the fastest
  round: the least latency or TTFT, the highest rate), which a slow burst in one round does not move;
  ``best+tokens``: ``best``, but decode from the median inter-token latency over all the load pair's
  generated tokens (7 per round at 8 new tokens) instead of a rate per round;
- the paired threshold on the speed figures (``--llmbench-fail``): 3% (``PAIRED_RULES``) or less. A
  change exactly at the threshold reads below it in about half the pairs, so catching 3% every time needs
  a lower threshold, and the A/A column shows what that costs in false alarms.

Every verdict is ``decide_paired`` under ``PAIRED_RULES`` with only the threshold replaced. The cost: the
seconds a pair of the design would take, from the saved pairs' own times: a load pair costs its two workers'
start and load (the measured pair time over its load pairs, less its calls) plus a warm-up and the rounds per
side, each call the median measured call; ``--one-sided-s`` (a one-sided run of the same combination, timed
on the same machine) adds the ratio.

    .venv/bin/python scripts/ab/levers.py --out scripts/ab/data/ab-catch-rate-2026-12-07.tar.xz --one-sided-s 9.1
    .venv/bin/python scripts/ab/levers.py --compact --out scripts/ab/data/ab-catch-rate-2026-12-07.tar.xz

``--compact`` prints the one table docs/ab.md shows (a few designs, four figures); without it, a table per
figure of every design the saved pairs can stand for. ``--mode duet`` takes the duet pairs of a
``catch_rate.py --modes`` run; ``--modes`` compares the two modes on the pair indices that ran in both.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from catch_rate import MODES, base_of, mode_of, saved_data

from llmbench.ab.paired import decide_paired
from llmbench.gate.pooling import benchmark_metrics
from llmbench.gate.rules import PAIRED_RULES

#: The figures the tables show (and whose noisy verdict adds a load pair).
METRICS = ("latency_s", "ttft_s", "prefill_tok_s", "decode_tok_s_total", "peak_rss_bytes")
SPEED = METRICS[:4]


@dataclass(frozen=True)
class Design:
    loads: int
    max_loads: int
    rounds: int
    estimator: str = "median"
    threshold: float = 0.03
    #: Leave out a load pair in which either side's load runs more than this share off that side's median
    #: load (latency, by the estimator) over the load pairs so far: a load in a mode of its own. 0: keep all.
    reject: float = 0.0

    @property
    def label(self) -> str:
        loads = f"{self.loads}" if self.max_loads == self.loads else f"{self.loads}..{self.max_loads}"
        rejected = f", loads off their side by over {self.reject:.0%} left out" if self.reject else ""
        return f"loads {loads}, rounds {self.rounds}, {self.estimator}, threshold {self.threshold:.1%}{rejected}"


ESTIMATORS = ("median", "best", "best+tokens")
#: The shares beyond which a load is left out as a load in a mode of its own (``Design.reject``).
REJECT = (0.05, 0.08)


def designs(loads: int, rounds: int) -> list[Design]:
    """The designs a fixed run of ``loads`` load pairs of ``rounds`` rounds can stand for: llmbench ab's
    defaults first, then the rounds, the load pairs (adaptive or fixed), the estimator and the threshold."""
    out = [Design(3, min(6, loads), min(2, rounds))]
    for r in sorted({min(2, rounds), rounds}):
        for estimator in ESTIMATORS:
            for threshold in (0.03, 0.02, 0.015, 0.01):
                for first in (3, loads):
                    out.append(Design(min(first, loads), loads, r, estimator, threshold))
    for threshold in (0.03, 0.02, 0.015):
        for reject in REJECT:
            for first in (3, loads):
                out.append(Design(min(first, loads), loads, min(2, rounds), "best", threshold, reject))
    return list(dict.fromkeys(out))


def per_load(bench: Mapping[str, Any], metric: str, rounds: int, estimator: str) -> list[float]:
    """``metric`` per load pair from the first ``rounds`` rounds of each (peak RSS: their peak)."""
    extra = bench["extra_info"]
    round_loads = extra["llmbench_ab"]["round_loads"]
    if metric == "decode_tok_s_total" and estimator == "best+tokens":
        itl = extra["metrics"]["itl_p50_s"]["samples"]  # every inter-token latency of every round, in order
        per_round = len(itl) // len(round_loads)
        tokens: dict[int, list[float]] = {}
        for index, load in enumerate(round_loads):
            kept = tokens.setdefault(load, [])
            if len(kept) < rounds * per_round:
                kept += itl[index * per_round : (index + 1) * per_round]
        return [1 / statistics.median(tokens[load]) for load in sorted(tokens)]
    samples = extra["metrics"][metric]["samples"]
    direction = extra["metrics"][metric].get("direction", "lower")
    loads: dict[int, list[float]] = {}
    for value, load in zip(samples, round_loads, strict=True):
        kept = loads.setdefault(load, [])
        if len(kept) < rounds:
            kept.append(float(value))
    out = []
    for load in sorted(loads):
        values = loads[load]
        if metric == "peak_rss_bytes":
            out.append(max(values))
        elif estimator.startswith("best"):
            out.append(min(values) if direction == "lower" else max(values))
        else:
            out.append(statistics.median(values))
    return out


def decide(base: Mapping[str, Any], head: Mapping[str, Any], design: Design) -> tuple[dict[str, str], int]:
    """The verdict per metric under ``design``, and the load pairs it used."""
    base_metrics, _ = benchmark_metrics(base)
    head_metrics, _ = benchmark_metrics(head)
    values = {m: tuple(per_load(side, m, design.rounds, design.estimator) for side in (base, head)) for m in METRICS}
    rules = {m: replace(PAIRED_RULES[m], relative=design.threshold) if m in SPEED else PAIRED_RULES[m] for m in METRICS}
    available = min(len(b) for b, _ in values.values())
    loads = min(design.loads, available)
    while True:
        kept = _kept(values["latency_s"], loads, design.reject)
        verdicts: dict[str, str] = {
            m: decide_paired(m, base_metrics[m], head_metrics[m], [b[k] for k in kept], [h[k] for k in kept],
                             rules[m]).verdict
            for m, (b, h) in values.items()
        }  # fmt: skip
        if "noisy" not in verdicts.values() or loads >= min(design.max_loads, available):
            return verdicts, loads
        loads += 1


def _kept(latency: Sequence[list[float]], loads: int, reject: float) -> list[int]:
    """The first ``loads`` load pairs but those in which either side's latency lies more than ``reject`` off
    that side's median over them (all of them where ``reject`` is 0)."""
    if not reject:
        return list(range(loads))
    middles = [statistics.median(side[:loads]) for side in latency]
    sides = list(zip(latency, middles, strict=True))
    return [k for k in range(loads) if all(abs(side[k] / middle - 1) <= reject for side, middle in sides)]


@dataclass(frozen=True)
class Cost:
    """Seconds of a pair: per load pair, the two workers' start and load; per call, a generate call; a round
    pair is two calls one after the other, or one call's time where both run at once (a duet)."""

    load_pair_s: float
    call_s: float
    calls_per_round_pair: int = 2

    def seconds(self, loads: float, rounds: int) -> float:
        return loads * (self.load_pair_s + self.calls_per_round_pair * (rounds + 1) * self.call_s)


def pairs(folder: Path, mode: str = "alternate") -> tuple[list[tuple[str, Mapping[str, Any], Mapping[str, Any]]], Cost]:
    """(scenario, base benchmark, head benchmark) of every saved pair of ``mode`` (one benchmark per pair), and
    the cost of a load pair and of a call, from the pairs' times and their calls' latency."""
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines() if line.strip()]
    rows = [row for row in rows if mode_of(row) == mode]
    per_round_pair = 1 if mode == "duet" else 2
    heads = {path.name: path for path in (folder / "runs").rglob("*-head.json")}
    out = []
    calls: list[float] = []
    overheads = []
    for row in rows:
        head = heads.get(str(row.get("head_run")))
        if head is None:
            continue
        [b] = json.loads(base_of(head).read_text())["benchmarks"]
        [h] = json.loads(head.read_text())["benchmarks"]
        out.append((str(row["scenario"]), b, h))
        latencies = [x for side in (b, h) for x in side["extra_info"]["metrics"]["latency_s"]["samples"]]
        loads = len(b["extra_info"]["llmbench_ab"]["loads"])
        rounds = len(b["extra_info"]["llmbench_ab"]["round_loads"]) // loads
        calls += latencies
        overheads.append(float(row["seconds"]) / loads - per_round_pair * (rounds + 1) * statistics.median(latencies))
    cost = Cost(statistics.median(overheads), statistics.median(calls), per_round_pair) if out else Cost(0.0, 0.0)
    return out, cost


#: The designs of the compact table (docs/ab.md): llmbench ab's defaults before and since 2026-12-07, then each
#: lever alone or with the best round.
COMPACT = (
    Design(3, 6, 2, "median"), Design(3, 6, 2, "best"), Design(3, 6, 2, "best", 0.015), Design(6, 6, 2, "best"),
    Design(3, 6, 3, "median"), Design(3, 6, 3, "best"), Design(3, 6, 3, "best+tokens"),
)  # fmt: skip

Decided = dict[Design, list[tuple[str, dict[str, str], int]]]


def _scenarios(found: Sequence[tuple[str, Any, Any]]) -> tuple[list[str], list[str]]:
    """Every scenario in the order the pairs ran, and the faults in order of kind and size."""
    scenarios = list(dict.fromkeys(name for name, _, _ in found))
    faults = sorted((s for s in scenarios if s != "aa"), key=lambda s: (s.rstrip("0123456789"), int("0" + s.lstrip(
        "abcdefghijklmnopqrstuvwxyz"))))  # fmt: skip
    return scenarios, faults


def _decided(found: Sequence[tuple[str, Mapping[str, Any], Mapping[str, Any]]], chosen: Sequence[Design]) -> Decided:
    return {design: [(name, *decide(b, h, design)) for name, b, h in found] for design in chosen}


def compact(folder: Path, one_sided_s: float | None = None, mode: str = "alternate") -> list[str]:
    """One table of the :data:`COMPACT` designs: per figure, the pairs flagged of A/A and of each fault."""
    found, cost = pairs(folder, mode)
    if not found:
        return ["no saved pairs"]
    _, faults = _scenarios(found)
    # a design of more rounds than every pair measured would be the measured design under another name
    marks = [b["extra_info"]["llmbench_ab"] for _, b, _ in found]
    measured_rounds = min(len(mark["round_loads"]) // len(mark["loads"]) for mark in marks)
    results = _decided(found, [design for design in COMPACT if design.rounds <= measured_rounds])
    shown = ("latency_s", "ttft_s", "prefill_tok_s", "decode_tok_s_total")
    counts = " · ".join(["A/A", *faults])
    lines = ["| design | seconds per pair" + (" (x one-sided)" if one_sided_s else "") + " | "
             + " | ".join(f"{m}: {counts}" for m in shown) + " |",
             "|---|---:|" + "---|" * len(shown)]  # fmt: skip
    for design, rows in results.items():
        mean_loads = statistics.mean(loads for _, _, loads in rows)
        seconds = cost.seconds(mean_loads, design.rounds)
        ratio = f" ({seconds / one_sided_s:.1f}x)" if one_sided_s else ""
        cells = []
        for metric in shown:
            flagged = [sum(v[metric] == "regressed" for n, v, _ in rows if n == name) for name in ["aa", *faults]]
            cells.append(" · ".join(map(str, flagged)))
        lines.append(f"| {design.label} | {seconds:.0f}{ratio} | {' | '.join(cells)} |")
    per = {name: sum(n == name for n, _, _ in found) for name in ["aa", *faults]}
    lines += ["", "Pairs flagged `regressed`, of " + ", ".join(f"{n} {name}" for name, n in per.items()) + "."]
    return [*lines, "", *spreads(found)]


def round_spread(folder: Path) -> str:
    """How far a side's rounds sit above its fastest round (latency; every saved pair, both sides): the median
    and the 90th percentile of round / fastest - 1. Works on any catch_rate.py archive."""
    above = []
    for path in (folder / "runs").rglob("*.json"):
        for bench in json.loads(path.read_text())["benchmarks"]:
            rounds = bench["extra_info"]["metrics"]["latency_s"]["samples"]
            above += [r / min(rounds) - 1 for r in rounds]
    above.sort()
    if not above:
        return "no rounds"
    return (f"{len(above)} rounds: a median {above[len(above) // 2]:.1%} and at the 90th percentile "
            f"{above[int(0.9 * len(above))]:.1%} above their side's fastest round")  # fmt: skip


def spreads(found: Sequence[tuple[str, Mapping[str, Any], Mapping[str, Any]]], rounds: int = 2) -> list[str]:
    """How far unchanged load pairs disagree under each estimator: per A/A pair, the standard deviation of its
    per-load log-ratios head/base (first ``rounds`` rounds of each load pair); the median over the pairs."""
    lines = [f"Spread of the A/A pairs' per-load ratios ({rounds} rounds; the median over the pairs of each pair's "
             "standard deviation of its per-load log-ratios):", ""]  # fmt: skip
    for estimator in ESTIMATORS:
        cells = []
        for metric in ("latency_s", "ttft_s", "prefill_tok_s", "decode_tok_s_total"):
            sds = []
            for name, b, h in found:
                if name == "aa":
                    base, head = (per_load(side, metric, rounds, estimator) for side in (b, h))
                    sds.append(statistics.stdev(math.log(y / x) for x, y in zip(base, head, strict=True)))
            cells.append(f"{metric} {statistics.median(sds):.1%}" if sds else f"{metric} n/a")
        lines.append(f"- {estimator}: {', '.join(cells)}")
    return lines


def tables(folder: Path, one_sided_s: float | None = None, catch: int = 19, mode: str = "alternate") -> list[str]:
    found, cost = pairs(folder, mode)
    if not found:
        return ["no saved pairs"]
    measured_loads = min(len(b["extra_info"]["llmbench_ab"]["loads"]) for _, b, _ in found)
    measured_rounds = min(len(b["extra_info"]["llmbench_ab"]["round_loads"]) // measured_loads for _, b, _ in found)
    scenarios, faults = _scenarios(found)
    results = _decided(found, designs(measured_loads, measured_rounds))
    lines = [f"{len(found)} pairs, each {measured_loads} load pairs of {measured_rounds} rounds per side; "
             f"per scenario: {', '.join(f'{s} {sum(n == s for n, _, _ in found)}' for s in scenarios)}; a load pair's "
             f"workers took {cost.load_pair_s:.1f} s, a call {cost.call_s:.2f} s"
             + (f"; a one-sided run {one_sided_s:g} s" if one_sided_s else ""), ""]  # fmt: skip
    for metric in METRICS:
        lines += [f"#### {metric}", "",
                  "| design | load pairs (mean) | seconds per pair" + (" (x one-sided)" if one_sided_s else "") + " "
                  f"| A/A flagged | {' | '.join(faults)} | smallest caught {catch} of 20 |",
                  f"|---|---:|---|---:|{'---:|' * len(faults)}---|"]  # fmt: skip
        for design, rows in results.items():
            mean_loads = statistics.mean(loads for _, _, loads in rows)
            seconds = cost.seconds(mean_loads, design.rounds)
            ratio = f" ({seconds / one_sided_s:.1f}x)" if one_sided_s else ""
            cells = []
            smallest = "none"
            for name in ["aa", *faults]:
                mine = [verdicts[metric] for n, verdicts, _ in rows if n == name]
                flagged = sum(v == "regressed" for v in mine)
                improved = sum(v == "improved" for v in mine)
                extra = f" (+{improved} improved)" if name == "aa" and improved else ""
                cells.append(f"{flagged} of {len(mine)}{extra}")
                if name != "aa" and smallest == "none" and mine and flagged >= catch * len(mine) / 20:
                    smallest = name
            lines.append(f"| {design.label} | {mean_loads:.1f} | {seconds:.0f}{ratio} "
                         f"| {' | '.join(cells)} | {smallest} |")  # fmt: skip
        lines.append("")
    return lines


def modes(folder: Path) -> list[str]:
    """Alternating rounds against a duet on the pair indices that ran in both (``catch_rate.py --modes
    alternate,duet``: interleaved, so both modes met the same machine): per mode and scenario, the pairs
    flagged per figure as run, the mean seconds and load pairs of a pair, the median over the pairs of the
    standard deviation of their per-load latency log-ratios and of their median log-ratio (the change read),
    and the median latency of a base round (a duet's rounds share the machine with the other side's)."""
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines() if line.strip()]
    heads = {path.name: path for path in (folder / "runs").rglob("*-head.json")}
    by_mode = {mode: {int(r["pair"]) for r in rows if mode_of(r) == mode} for mode in MODES}
    both = set.intersection(*by_mode.values())
    if not both:
        return ["no pair index ran in both modes"]
    shown = ("latency_s", "ttft_s", "prefill_tok_s", "decode_tok_s_total")
    lines = [f"Pair indices {min(both)}-{max(both)}, each run in both modes:", "",
             "| mode | scenario | pairs | flagged: " + " · ".join(shown) + " | seconds per pair | load pairs "
             "| per-load latency spread | change read | base round |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for mode in MODES:
        for scenario in dict.fromkeys(str(r["scenario"]) for r in rows):
            mine = [r for r in rows if mode_of(r) == mode and r["scenario"] == scenario and int(r["pair"]) in both
                    and str(r.get("head_run")) in heads]  # fmt: skip
            if not mine:
                continue
            spreads, changes, calls = [], [], []
            for row in mine:
                head = heads[str(row["head_run"])]
                [b] = json.loads(base_of(head).read_text())["benchmarks"]
                [h] = json.loads(head.read_text())["benchmarks"]
                base, current = (side["extra_info"]["llmbench_ab"]["loads"] for side in (b, h))
                logs = [math.log(y["latency_s"] / x["latency_s"]) for x, y in zip(base, current, strict=True)]
                spreads.append(statistics.stdev(logs))
                changes.append(statistics.median(logs))
                calls += b["extra_info"]["metrics"]["latency_s"]["samples"]
            flagged = " · ".join(str(sum(r["ab"][m] == "regressed" for r in mine)) for m in shown)
            lines.append(
                f"| {mode} | {scenario} | {len(mine)} | {flagged} | {statistics.mean(r['seconds'] for r in mine):.1f} "
                f"| {statistics.mean(r['loads_run'] for r in mine):.1f} | {statistics.median(spreads):.1%} "
                f"| {math.expm1(statistics.median(changes)):+.1%} | {statistics.median(calls):.3f} s |"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="the folder scripts/ab/catch_rate.py wrote, or a committed .tar.xz of one")  # fmt: skip
    parser.add_argument("--one-sided-s", type=float, default=None,
                        help="seconds of a one-sided run of the same combination on the same machine: adds the "
                        "cost ratio")  # fmt: skip
    parser.add_argument("--round-spread", action="store_true",
                        help="only how far each side's rounds sit above its fastest round (any catch_rate.py "
                        "archive)")  # fmt: skip
    parser.add_argument("--compact", action="store_true",
                        help="one table of a few designs (llmbench ab's defaults and each lever), as docs/ab.md "
                        "shows")  # fmt: skip
    parser.add_argument("--modes", action="store_true",
                        help="only alternating rounds against a duet, on the pair indices run in both")  # fmt: skip
    parser.add_argument("--mode", choices=MODES, default="alternate",
                        help="the pairs of this mode of a catch_rate.py --modes run. Default: %(default)s")  # fmt: skip
    args = parser.parse_args(argv)
    with saved_data(args.out) as folder:
        if args.round_spread:
            print(round_spread(folder))
            return 0
        if args.modes:
            print("\n".join(modes(folder)))
            return 0
        print("\n".join((compact if args.compact else tables)(folder, args.one_sided_s, mode=args.mode)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
