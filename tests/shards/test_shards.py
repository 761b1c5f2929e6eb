"""Sharding the matrix: the split (a partition, deterministic, groups kept together) and the option."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmbench.config.combination import Combination
from llmbench.config.models import BUILTIN_MODELS
from llmbench.plugin import skip_reason
from llmbench.shards.costs import Candidate, cost_work
from llmbench.shards.plan import Shard, Work, assign_shards, expected_cost, parse_shard

MODELS = ("gemma3-270m", "t5-small", "gemma3-1b-it")
PRECISIONS = ("fp32", "bf16", "int8", "nf4", "q4_k_m")
DEVICES = ("cpu", "cuda")
BATCHES = (1, 2, 4)


def matrix_work(
    models: tuple[str, ...],
    precisions: tuple[str, ...],
    devices: tuple[str, ...],
    batches: tuple[int, ...],
    load_tests: bool = True,
    max_new_tokens: int = 32,
) -> list[Work]:
    """What the shard hook builds for a suite with test_generate (and test_load) over a matrix."""
    work = [
        Work(f"test_generate[{m}-{p}-{d}-bs{b}]", m, p, d, b, expected_cost(p, b, max_new_tokens))
        for m, p, d, b in itertools.product(models, precisions, devices, batches)
    ]
    if load_tests:
        work += [
            Work(f"test_load[{m}-{p}-{d}]", m, p, d, None, expected_cost(p, None, max_new_tokens))
            for m, p, d in itertools.product(models, precisions, devices)
        ]
    return work


def subset(values: tuple[object, ...]) -> st.SearchStrategy[tuple[object, ...]]:
    return st.lists(st.sampled_from(values), min_size=1, max_size=len(values), unique=True).map(tuple)


matrices = st.tuples(subset(MODELS), subset(PRECISIONS), subset(DEVICES), subset(BATCHES), st.booleans())


@settings(max_examples=200, deadline=None)
@given(matrix=matrices, n=st.integers(min_value=1, max_value=12), seed=st.integers(0, 2**16))
def test_shards_partition_the_matrix_deterministically(
    matrix: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[int, ...], bool], n: int, seed: int
) -> None:
    work = matrix_work(*matrix)
    shard_of = assign_shards(work, n)

    # Every combination in exactly one shard, numbered 1..n.
    assert sorted(shard_of) == sorted(w.name for w in work)
    assert set(shard_of.values()) <= set(range(1, n + 1))
    # The same input in any order gives the same shards.
    shuffled = list(work)
    random.Random(seed).shuffle(shuffled)
    assert assign_shards(shuffled, n) == shard_of

    groups = {(w.model, w.precision) for w in work}
    if n <= len(groups):
        # A model and precision (one load) stays in one shard.
        for group in groups:
            assert len({shard_of[w.name] for w in work if (w.model, w.precision) == group}) == 1
    # As many shards are used as there are pieces to give them (a piece: one device and batch size).
    units = {(w.model, w.precision, w.device, w.batch_size) for w in work if w.batch_size is not None}
    assert len(set(shard_of.values())) == min(n, len(units))


@settings(max_examples=200, deadline=None)
@given(matrix=matrices, n=st.integers(min_value=1, max_value=12), seed=st.integers(0, 2**16))
def test_tests_that_cost_nothing_are_placed_and_leave_the_split_to_the_others(
    matrix: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[int, ...], bool], n: int, seed: int
) -> None:
    """CUDA skipped here: its tests cost nothing; the shards that cost anything are as many as the CPU
    pieces allow, and a group is split only while fewer groups than shards cost anything."""
    work = [replace(w, cost=0.0) if w.device == "cuda" else w for w in matrix_work(*matrix)]
    shard_of = assign_shards(work, n)
    assert sorted(shard_of) == sorted(w.name for w in work)
    shuffled = list(work)
    random.Random(seed).shuffle(shuffled)
    assert assign_shards(shuffled, n) == shard_of
    costing = {(w.model, w.precision) for w in work if w.cost > 0}
    if n <= len(costing):
        for group in costing:
            assert len({shard_of[w.name] for w in work if (w.model, w.precision) == group}) == 1
    units = {(w.model, w.precision, w.batch_size) for w in work if w.batch_size is not None and w.cost > 0}
    assert len({shard_of[w.name] for w in work if w.cost > 0}) == min(n, len(units))


@settings(max_examples=100, deadline=None)
@given(matrix=matrices, n=st.integers(min_value=1, max_value=6))
def test_shards_are_balanced_within_one_group(
    matrix: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[int, ...], bool], n: int
) -> None:
    """Greedy largest-first: the busiest shard exceeds the idlest by at most one group's cost."""
    work = matrix_work(*matrix)
    shard_of = assign_shards(work, n)
    groups = {(w.model, w.precision) for w in work}
    if n > len(groups):
        return
    loads = Counter[int]()
    group_cost = Counter[tuple[str, str]]()
    for w in work:
        loads[shard_of[w.name]] += w.cost  # type: ignore[assignment]
        group_cost[(w.model, w.precision)] += w.cost  # type: ignore[assignment]
    all_loads = [loads[index] for index in range(1, n + 1)]
    assert max(all_loads) - min(all_loads) <= max(group_cost.values()) + 1e-9


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        # Costs: int8 64 per bs1 test (factor 2), q4_k_m 12.8, bf16 32; per group over bs1, bs4 and a load.
        (1, {"int8": {1}, "bf16": {1}, "q4_k_m": {1}}),
        (2, {"int8": {1}, "bf16": {2}, "q4_k_m": {2}}),
        (3, {"int8": {1}, "bf16": {2}, "q4_k_m": {3}}),
    ],
)
def test_largest_group_first_onto_the_least_loaded_shard(n: int, expected: dict[str, set[int]]) -> None:
    work = matrix_work(("m",), ("bf16", "int8", "q4_k_m"), ("cpu",), (1, 4))
    shard_of = assign_shards(work, n)
    assert {p: {shard_of[w.name] for w in work if w.precision == p} for p in expected} == expected


def test_more_shards_than_groups_split_by_device_then_batch_size() -> None:
    work = matrix_work(("m",), ("bf16",), ("cpu", "cuda"), (1, 4))
    assert assign_shards(work, 2) == {
        "test_generate[m-bf16-cpu-bs1]": 1,
        "test_generate[m-bf16-cpu-bs4]": 1,
        "test_load[m-bf16-cpu]": 1,
        "test_generate[m-bf16-cuda-bs1]": 2,
        "test_generate[m-bf16-cuda-bs4]": 2,
        "test_load[m-bf16-cuda]": 2,
    }
    four = assign_shards(work, 4)
    # Each device split again by batch size; a load test goes with its device's smallest batch size.
    assert four["test_load[m-bf16-cpu]"] == four["test_generate[m-bf16-cpu-bs1]"]
    assert four["test_load[m-bf16-cuda]"] == four["test_generate[m-bf16-cuda-bs1]"]
    assert len(set(four.values())) == 4
    # Nothing left to split: the extra shards stay empty.
    assert set(assign_shards(work, 9).values()) == set(four.values())


def test_repeated_names_are_refused() -> None:
    work = matrix_work(("m",), ("bf16",), ("cpu",), (1,))
    with pytest.raises(ValueError, match="repeated: test_generate"):
        assign_shards(work + work[:1], 2)


@pytest.mark.parametrize(("text", "expected"), [("1/1", Shard(1, 1)), ("2/3", Shard(2, 3)), (" 3/3 ", Shard(3, 3))])
def test_parse_shard(text: str, expected: Shard) -> None:
    assert parse_shard(text, "--llmbench-shard", "here") == expected


# --- through pytest ------------------------------------------------------------------------------

SUITE = """
def test_generate(llm_combination):
    pass

def test_load(llm_load_combination):
    pass

def test_plain():
    pass
"""
MATRIX_ARGS = (
    "--llmbench-model=gemma3-270m,t5-small",
    "--llmbench-precision=fp32,bf16,q4_k_m",
    "--llmbench-device=cpu,cuda",
    "--llmbench-batch-size=1,4",
)


def collected(result: pytest.RunResult) -> list[str]:
    return [line.split("::", 1)[1] for line in result.outlines if "::" in line]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_shard_option_partitions_the_collected_tests(pytester: pytest.Pytester, n: int) -> None:
    pytester.makepyfile(test_suite=SUITE)
    everything = collected(pytester.runpytest("--collect-only", "-q", *MATRIX_ARGS))
    # 2 models x 3 precisions x 2 devices x 2 batch sizes, 12 load tests, 1 plain test.
    assert len(everything) == 24 + 12 + 1
    shards = []
    for k in range(1, n + 1):
        result = pytester.runpytest("--collect-only", "-q", f"--llmbench-shard={k}/{n}", *MATRIX_ARGS)
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
        ids = collected(result)
        kept = len([i for i in ids if i != "test_plain"])
        extra = " (and 1 tests outside the matrix)" if k == 1 else ""
        result.stdout.fnmatch_lines([f"llmbench shard {k}/{n}: {kept} of 36 combinations{extra}"])
        shards.append(ids)
    flat = [test for ids in shards for test in ids]
    assert sorted(flat) == sorted(everything)  # nothing lost, nothing twice
    assert "test_plain" in shards[0]


def test_shard_lists_exactly_that_shards_ids(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--collect-only", "-q", "--llmbench-shard=2/3", *MATRIX_ARGS)
    models, precisions, devices = ("gemma3-270m", "t5-small"), ("fp32", "bf16", "q4_k_m"), ("cpu", "cuda")

    def candidate(name: str, model: str, precision: str, device: str, batch: int | None) -> Candidate:
        # Each model's own max_new_tokens; a combination that cannot run here is skipped (costs nothing).
        combination = Combination(BUILTIN_MODELS[model], precision, device, batch or 1)  # type: ignore[arg-type]
        tokens = BUILTIN_MODELS[model].max_new_tokens
        return Candidate(name, model, precision, device, batch, tokens, skip_reason(combination) is not None)

    tests = [
        candidate(f"test_suite.py::test_generate[{m}-{p}-{d}-bs{b}]", m, p, d, b)
        for m, p, d, b in itertools.product(models, precisions, devices, (1, 4))
    ] + [
        candidate(f"test_suite.py::test_load[{m}-{p}-{d}]", m, p, d, None)
        for m, p, d in itertools.product(models, precisions, devices)
    ]
    work = cost_work(tests, None)[0]
    shard_of = assign_shards(work, 3)
    expected = sorted(w.name.split("::", 1)[1] for w in work if shard_of[w.name] == 2)
    assert sorted(collected(result)) == expected
    # A model and precision stays together: the shard holds whole (model, precision) groups.
    mine = {(w.model, w.precision) for w in work if shard_of[w.name] == 2}
    assert mine
    assert all(shard_of[w.name] == 2 for w in work if (w.model, w.precision) in mine)
    result.stdout.fnmatch_lines([f"llmbench shard 2/3: {len(expected)} of 36 combinations"])
    result.stdout.fnmatch_lines([f"{len(expected)}/37 tests collected ({37 - len(expected)} deselected)*"])
    skipped = sum(1 for t in tests if t.skipped)
    counts = f"no saved runs given (--llmbench-shard-costs), {36 - skipped} estimated, {skipped} skipped"
    result.stdout.fnmatch_lines([f"llmbench shard 2/3 costs: *% of the matrix's ({counts})"])


def test_deselected_tests_are_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--llmbench-shard=2/2", *MATRIX_ARGS)
    outcomes = result.parseoutcomes()
    assert outcomes["deselected"] > 0
    assert outcomes.get("passed", 0) + outcomes.get("skipped", 0) + outcomes["deselected"] == 37


@pytest.mark.parametrize(
    ("args", "ini", "expected"),
    [
        (["--llmbench-shard=0/3"], None,
         "--llmbench-shard: '0/3' is not a shard (from --llmbench-shard on the command line); "
         "expected K/N with 1 <= K <= N, e.g. 2/3"),
        (["--llmbench-shard=4/3"], None, "--llmbench-shard: '4/3' is not a shard (from --llmbench-shard on the*"),
        (["--llmbench-shard=x"], None, "--llmbench-shard: 'x' is not a shard (from --llmbench-shard on the *"),
        (["--llmbench-shard=1/0"], None, "--llmbench-shard: '1/0' is not a shard*"),
        (["--llmbench-shard=1/2/3"], None, "--llmbench-shard: '1/2/3' is not a shard*"),
        ([], "llmbench_shard = 3/2", "--llmbench-shard: '3/2' is not a shard (from llmbench_shard in tox.ini)*"),
    ],
)  # fmt: skip
def test_bad_shard_values_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], ini: str | None, expected: str
) -> None:
    if ini is not None:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--collect-only", "-q", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: " + expected])
