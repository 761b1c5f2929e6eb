"""The interleaved measurement: both sides' workers up together, their timed rounds alternating.

For each loaded model (model, precision, device) and each of ``loads`` load pairs, a fresh worker
per side is started and loaded (the side that starts first is drawn), then for each batch size the
warm-up rounds and the timed rounds run in pairs, A then B or B then A as a seeded draw decides.
Quality (greedy, untimed) runs once per side, in the first load pair, after its timed rounds.
With ``Schedule.duet_cpus`` (``llmbench ab --duet``) each round pair's two rounds run at the same moment,
each side's worker pinned to its half of those CPUs (:mod:`llmbench.ab.duet`).
Where the verdict on a timed or memory figure is still ``noisy`` after ``loads`` load pairs (the
loads disagree), more load pairs follow, one at a time, up to ``max_loads``. Progress goes to
stderr. See docs/ab.md.

With ``Schedule.one_side_at_a_time`` (``llmbench ab --one-side-at-a-time``, for a model that does not
fit twice on its device) a load pair runs its sides one after the other, in the drawn order: the
first side's worker loads, runs its warm-up and timed rounds of every batch size (and quality in the
first load pair) and exits before the other side's worker starts. The load pair stays the unit of the
verdict; only the rounds within it no longer alternate.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal, Protocol, TextIO

from llmbench.ab.collect import Benchmark, Plan
from llmbench.ab.duet import Placement, at_once, split_cpus
from llmbench.ab.sides import Side, SideName, side_environment
from llmbench.backends import BackendUnavailable, Generation, LoadedModel
from llmbench.config.combination import Combination
from llmbench.quality.runs import QualityRun, QualityRuns
from llmbench.workers import WorkerFailed, WorkerModel
from llmbench.workers.launch import WorkerLauncher, load_in, prepare_in
from llmbench.workers.protocol import TimedRound

__all__ = [
    "PER_LOAD_CHOICES", "Measured", "ModelHandle", "PerLoad", "Progress", "Schedule", "SideRecord", "Undecided",
    "measure_pair",
    "start_worker_model",
]  # fmt: skip


class ModelHandle(LoadedModel, Protocol):
    """A loaded model of one side (a :class:`~llmbench.workers.WorkerModel`): timed rounds and facts."""

    load_s: float

    def timed_generate(self, prompts: Sequence[str], max_new_tokens: int) -> TimedRound: ...

    def pin(self, cpus: frozenset[int]) -> None: ...


#: How a load pair's rounds make its figure of a timed metric (``llmbench ab --per-load``).
PerLoad = Literal["median", "best"]
PER_LOAD_CHOICES: tuple[PerLoad, ...] = ("median", "best")

#: Starts and loads one side's model for a combination (a fresh worker each call).
Starter = Callable[[Side, Combination], ModelHandle]


@dataclass(frozen=True)
class Schedule:
    loads: int
    rounds: int
    warmup_rounds: int
    seed: int
    #: Load pairs at most, where the first ``loads`` leave a verdict ``noisy`` (``loads`` when 0).
    max_loads: int = 0
    #: One side's worker resident at a time: in each load pair the first side (drawn) loads, runs all
    #: its rounds and exits before the other side loads; rounds alternate per load pair, not per round.
    one_side_at_a_time: bool = False
    #: Each load pair's figure of a timed metric: the ``best`` round (the least latency or TTFT, the highest
    #: rate), which a slow burst in one round does not move, or the ``median`` of its rounds. ``best`` caught
    #: more of the engine-step faults at the same cost and no more false alarms (docs/ab.md, Measured).
    per_load: PerLoad = "best"
    #: Both sides' rounds at the same time, each side's worker pinned to a half of these CPUs, the halves
    #: swapped every round pair: a duet (:mod:`llmbench.ab.duet`). Empty: rounds alternate.
    duet_cpus: frozenset[int] = frozenset()

    @property
    def duet(self) -> bool:
        return bool(self.duet_cpus)

    @property
    def load_limit(self) -> int:
        return max(self.loads, self.max_loads)


@dataclass
class SideRecord:
    """What one side measured for one benchmark, round by round."""

    rounds: list[TimedRound] = field(default_factory=list)
    #: The load pair (0-based) of each timed round.
    round_loads: list[int] = field(default_factory=list)
    #: The CPUs each timed round ran on (a duet; empty otherwise).
    round_cpus: list[list[int]] = field(default_factory=list)
    #: The load of each load pair, in seconds (in the worker).
    load_s: list[float] = field(default_factory=list)
    quality: QualityRun | None = None
    model: ModelHandle | None = None


#: The figures of a group of benchmarks (one loaded model) whose verdict the load pairs so far leave
#: ``noisy``, as "bs1 latency_s" (batch size and metric; empty: every verdict is decided).
Undecided = Callable[[Sequence[Benchmark], "Measured"], list[str]]


@dataclass
class Measured:
    """Both sides' records by benchmark fullname, with what could not be measured."""

    records: dict[SideName, dict[str, SideRecord]]
    #: (fullname, reason) of benchmarks skipped (the backend said unavailable) or failed (a worker died).
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: "base"/"head" in the order each round pair ran, per benchmark (for the saved marks and tests).
    orders: dict[str, list[tuple[SideName, SideName]]] = field(default_factory=dict)


class Progress:
    """Progress lines on stderr: which side, which combination, load k of n, rounds left."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()

    def line(self, text: str) -> None:
        self.stream.write(f"\rllmbench ab: {text}\n" if self.live else f"llmbench ab: {text}\n")
        self.stream.flush()

    def rounds(self, text: str, done: int, total: int) -> None:
        if self.live:
            self.stream.write(f"\rllmbench ab: {text}: round {done} of {total} ({total - done} left)   ")
            self.stream.flush()
        elif done == total:
            self.line(f"{text}: {total} rounds per side done")


def start_worker_model(side: Side, combination: Combination, cache_dir: Path, threads: int | None,
                       log_dir: Path) -> WorkerModel:  # fmt: skip
    """A fresh worker for ``combination`` running ``side``'s code on its interpreter, in its environment
    (``side.env`` over this process's), prepared and loaded. With ``side.cpus`` (a duet) the worker is
    pinned to them right after its process starts and again, every thread, after the load; it runs one
    thread per CPU unless ``threads`` says otherwise."""
    if side.cpus is not None and threads is None:
        threads = len(side.cpus)
    launcher = WorkerLauncher(threads=threads, log_dir=log_dir, python=side.python, sys_path=side.sys_path)
    with side_environment(side.env):  # the worker inherits the environment it is started in
        worker = launcher.start(combination, cache_dir)
    if side.cpus is not None:
        worker.pin(side.cpus)
    prepare_in(worker)
    model = load_in(worker)
    if side.cpus is not None:
        model.pin(side.cpus)  # again: any thread a library made before the first pin took effect
    return model


def measure_pair(
    plan: Plan,
    sides: tuple[Side, Side],
    schedule: Schedule,
    start: Starter,
    progress: Progress | None = None,
    undecided: Undecided | None = None,
) -> Measured:
    """Measure every benchmark of ``plan`` on both sides, interleaved (see the module docstring).

    ``undecided`` tells, after the first ``schedule.loads`` load pairs of a model and after each extra
    one, which verdicts are still noisy; while any is and ``schedule.max_loads`` allows, one more
    load pair runs. Without it, exactly ``schedule.loads`` load pairs run.
    """
    progress = progress or Progress()
    rng = random.Random(schedule.seed)
    by_name = {side.name: side for side in sides}
    measured: Measured = Measured({"base": {}, "head": {}})
    settings = plan.settings
    named = settings.matrix.names_datasets
    quality = {
        side.name: {
            dataset: QualityRuns(
                items, settings.quality_batch_size, settings.max_new_tokens.value, settings.quality_target,
                settings.outputs_dir / side.name / dataset if named else settings.outputs_dir / side.name, dataset,
            )
            for dataset, items in plan.quality_items.items()
        } or None
        for side in sides
    }  # fmt: skip
    groups = plan.groups()
    for number, group in enumerate(groups, 1):
        first = group[0].combination
        what = f"[{number}/{len(groups)}] {' '.join(first.load_key)}"
        pairing = _LoadPair(group, by_name, quality, start, rng, schedule, measured, progress, what)
        try:
            load = 0
            while load < schedule.loads or _more(group, measured, load, schedule, undecided, progress, what):
                of = f"{load + 1} of {schedule.loads}" if load < schedule.loads else f"{load + 1} (extra)"
                order: list[SideName] = rng.sample(["base", "head"], 2)
                if schedule.one_side_at_a_time:
                    pairing.one_at_a_time(load, of, order)
                else:
                    pairing.together(load, of, order)
                load += 1
        except BackendUnavailable as error:
            _drop(measured, group, measured.skipped, str(error))
            progress.line(f"{what}: skipped: {error}")
        except WorkerFailed as error:
            _drop(measured, group, measured.failed, str(error))
            progress.line(f"{what}: FAILED: {error}")
    return measured


@dataclass
class _LoadPair:
    """Runs the load pairs of one loaded model (one group of benchmarks), either way."""

    group: Sequence[Benchmark]
    by_name: dict[SideName, Side]
    quality: dict[SideName, dict[str, QualityRuns] | None]
    start: Starter
    rng: random.Random
    schedule: Schedule
    measured: Measured
    progress: Progress
    what: str

    def together(self, load: int, of: str, order: list[SideName]) -> None:
        """Both sides' workers loaded (in ``order``), every round pair alternating in a drawn order."""
        models: dict[SideName, ModelHandle] = {}
        placement = None
        if self.schedule.duet:
            placement = Placement(split_cpus(self.schedule.duet_cpus), self.rng.choice(["base", "head"]))
        try:
            for name in order:
                side = self.by_name[name]
                if placement is not None:
                    side = dataclasses.replace(side, cpus=placement.cpus(name, 0))
                models[name] = self.start(side, self.group[0].combination)
            loaded = ", ".join(f"{name} {models[name].load_s:.2f} s" for name in order)
            if placement is not None:
                loaded += (
                    "; duet: "
                    + ", ".join(f"{name} on CPUs {_cpu_list(placement.cpus(name, 0))}" for name in order)
                    + ", swapped every round pair"
                )
            self.progress.line(f"{self.what}: load {of}: loaded ({loaded})")
            for bench in self.group:
                _rounds(bench, load, of, models, self.rng, self.schedule, self.measured, self.progress, self.what,
                        placement)  # fmt: skip
            if load == 0:
                for name in order:
                    self._quality(name, models[name])
        finally:
            for model in models.values():
                model.close()

    def one_at_a_time(self, load: int, of: str, order: list[SideName]) -> None:
        """Each side in ``order`` alone: its worker loads, runs all its rounds and exits before the next."""
        for name in order:
            model = self.start(self.by_name[name], self.group[0].combination)
            try:
                self.progress.line(f"{self.what}: load {of}: {name} loaded ({model.load_s:.2f} s), alone "
                                   "(--one-side-at-a-time)")  # fmt: skip
                for bench in self.group:
                    self._side_rounds(bench, load, of, name, model)
                if load == 0:
                    self._quality(name, model)
            finally:
                model.close()
        for bench in self.group:  # every round of the first side ran before the same round of the second
            self.measured.orders.setdefault(bench.fullname, []).extend([(order[0], order[1])] * self.schedule.rounds)

    def _side_rounds(self, bench: Benchmark, load: int, of: str, name: SideName, model: ModelHandle) -> None:
        record = _loaded(self.measured, name, bench, model)
        prompts, tokens = bench.prompts, bench.max_new_tokens
        for _ in range(self.schedule.warmup_rounds):
            model.timed_generate(prompts, tokens)
        label = f"{self.what} bs{bench.combination.batch_size}: load {of}, {name}"
        for done in range(1, self.schedule.rounds + 1):
            record.rounds.append(model.timed_generate(prompts, tokens))
            record.round_loads.append(load)
            self.progress.rounds(label, done, self.schedule.rounds)

    def _quality(self, name: SideName, model: ModelHandle) -> None:
        runs = self.quality[name]
        if runs is None:
            return
        self.progress.line(f"{self.what}: quality of {self.by_name[name].label} (greedy, untimed)")
        for bench in self.group:
            record = self.measured.records[name][bench.fullname]
            record.quality = runs[bench.combination.dataset_name].get(bench.combination, model, bench.max_new_tokens)


def _loaded(measured: Measured, name: SideName, bench: Benchmark, model: ModelHandle) -> SideRecord:
    """``name``'s record of ``bench``, with this load pair's load time and model noted."""
    record = measured.records[name].setdefault(bench.fullname, SideRecord())
    record.load_s.append(model.load_s)
    record.model = model
    return record


def _more(group: Sequence[Benchmark], measured: Measured, load: int, schedule: Schedule,
          undecided: Undecided | None, progress: Progress, what: str) -> bool:  # fmt: skip
    """Whether one more load pair runs: a verdict is still noisy and ``max_loads`` allows it."""
    if undecided is None or load >= schedule.load_limit:
        return False
    noisy = undecided(group, measured)
    if noisy:
        shown = ", ".join(noisy[:3]) + (f" and {len(noisy) - 3} more" if len(noisy) > 3 else "")
        progress.line(f"{what}: after {load} load pairs the loads disagree on {shown}: one more load pair "
                      f"(at most {schedule.load_limit}, --max-loads)")  # fmt: skip
    return bool(noisy)


def _drop(measured: Measured, group: Sequence[Benchmark], into: list[tuple[str, str]], reason: str) -> None:
    for bench in group:
        for records in measured.records.values():
            records.pop(bench.fullname, None)
        into.append((bench.fullname, reason))


def _rounds(
    bench: Benchmark,
    load: int,
    of: str,
    models: dict[SideName, ModelHandle],
    rng: random.Random,
    schedule: Schedule,
    measured: Measured,
    progress: Progress,
    what: str,
    placement: Placement | None = None,
) -> None:
    """The warm-up and timed rounds of ``bench`` in one load pair: alternating, or with a ``placement`` (a
    duet) each round pair's two rounds at once, the sides swapping CPUs before each timed round pair."""
    records = {name: _loaded(measured, name, bench, model) for name, model in models.items()}
    prompts, tokens = bench.prompts, bench.max_new_tokens
    for _ in range(schedule.warmup_rounds):
        if placement is not None:
            _place(models, placement, 0)
            at_once({name: partial(model.timed_generate, prompts, tokens) for name, model in models.items()})
            continue
        for name in rng.sample(sorted(models), 2):
            models[name].timed_generate(prompts, tokens)
    label = f"{what} bs{bench.combination.batch_size}: load {of}"
    orders = measured.orders.setdefault(bench.fullname, [])
    for done in range(1, schedule.rounds + 1):
        pair: list[SideName] = rng.sample(["base", "head"], 2)
        orders.append((pair[0], pair[1]))
        if placement is not None:  # both at the same moment (the drawn order is only recorded)
            cpus = _place(models, placement, done - 1)
            rounds = at_once({name: partial(models[name].timed_generate, prompts, tokens) for name in pair})
            for name in pair:
                records[name].round_cpus.append(sorted(cpus[name]))
        else:
            rounds = {name: models[name].timed_generate(prompts, tokens) for name in pair}
        for name in pair:
            records[name].rounds.append(rounds[name])
            records[name].round_loads.append(load)
        progress.rounds(label, done, schedule.rounds)


def _place(
    models: dict[SideName, ModelHandle], placement: Placement, round_pair: int
) -> dict[SideName, frozenset[int]]:
    """Each side's worker on its half for ``round_pair``; the halves by side."""
    cpus = {name: placement.cpus(name, round_pair) for name in models}
    for name, model in models.items():
        model.pin(cpus[name])
    return cpus


def _cpu_list(cpus: frozenset[int] | None) -> str:
    return ",".join(map(str, sorted(cpus or ())))


def generations(record: SideRecord, load: int | None = None) -> list[Generation]:
    """The timed rounds' generations (of one load pair, or all)."""
    return [r.generation for r, k in zip(record.rounds, record.round_loads, strict=True) if load is None or k == load]
