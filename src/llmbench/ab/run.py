"""An ``llmbench ab`` run's defaults (load pairs, rounds) and the check that asks for more load pairs.

:func:`noisy_verdicts` is what :func:`llmbench.ab.interleave.measure_pair` calls after each load pair
to learn which verdicts are still noisy; the command is :mod:`llmbench.commands.ab`. See docs/ab.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmbench.ab.collect import Benchmark, Plan
from llmbench.ab.interleave import Measured, Schedule
from llmbench.ab.save import benchmark_json
from llmbench.ab.sides import Side
from llmbench.ab.verdict import noisy_paired
from llmbench.config.settings import Setting
from llmbench.metrics import Metric

__all__ = ["DEFAULT_LOADS", "DEFAULT_MAX_LOADS", "DEFAULT_ROUNDS", "noisy_verdicts", "timed_rounds"]

#: Load pairs per model by default: the fewest whose median ignores one load's own mode.
DEFAULT_LOADS = 3
#: Load pairs at most where the first ones disagree: the fewest whose signed-rank interval reaches
#: 95% (llmbench.ab.paired.RANK_INTERVAL_LOADS), so one load in a mode of its own cannot keep a
#: change the other loads agree on undecided. See docs/ab.md.
DEFAULT_MAX_LOADS = 6
#: Timed rounds per side in each load pair by default (where --llmbench-rounds is not set either):
#: the load pair is the statistic's unit and its rounds only give that load's median, so a pair spends
#: its time on loads, not rounds; with 2 an A/B of the default matrix costs about 2.5 one-sided runs
#: (docs/ab.md, "Cost").
DEFAULT_ROUNDS = 2


def timed_rounds(requested: int | None, llmbench_rounds: Setting[int]) -> int:
    """Rounds per side per load pair: ``--rounds``, else ``--llmbench-rounds`` where set, else the default."""
    if requested is not None:
        return requested
    return llmbench_rounds.value if llmbench_rounds.kind != "default" else DEFAULT_ROUNDS


def noisy_verdicts(plan: Plan, sides: tuple[Side, Side], schedule: Schedule, bandwidths: dict[str, Metric | None],
               group: Sequence[Benchmark], measured: Measured) -> list[str]:  # fmt: skip
    """The verdicts of ``group`` that the load pairs so far leave noisy, as "bs1 latency_s" (batch size, metric)."""
    out = []
    for bench in group:
        base, head = (measured.records[side.name].get(bench.fullname) for side in sides)
        if base is None or head is None or not base.rounds or not head.rounds:
            continue
        bandwidth = bandwidths.get(bench.combination.device)
        saved = [benchmark_json(bench, record, side, "pending", schedule, bandwidth)
                 for side, record in zip(sides, (base, head), strict=True)]  # fmt: skip
        out += [f"bs{bench.combination.batch_size} {metric}" for metric in noisy_paired(saved[0], saved[1], plan.rules)]
    return out
