"""The pytest plugin: options, hooks and fixtures only; the work is done in the modules they call."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from llmbench import benchmark_storage
from llmbench.backends import BackendUnavailable, LoadedModel, get_backend
from llmbench.backends.loaded_models import LoadedModels
from llmbench.config.combination import Combination
from llmbench.config.options import add_options
from llmbench.config.settings import Settings, resolve_settings
from llmbench.measure.generate import GenerateBenchmark
from llmbench.measure.peak_bandwidth import PeakBandwidths
from llmbench.measure.probes import probes_for, probes_unavailable_reason
from llmbench.plugin import terminal_table as metrics_table
from llmbench.plugin.keys import COMBINATION_ARG, LOAD_COMBINATION_ARG, MODELS_KEY, SETTINGS_KEY
from llmbench.plugin.prompt_lengths import collection_reason
from llmbench.workers import WorkerFailed
from llmbench.workers.benchmark import WorkerGenerateBenchmark
from llmbench.workers.session import InProcessLoader, WorkerLoader

pytest_plugins = [
    "llmbench.plugin.fixtures",
    "llmbench.plugin.shard_hooks",
    "llmbench.plugin.gate_hooks",
    "llmbench.plugin.report_hooks",
    "llmbench.plugin.comparison_hooks",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmbench", "LLM inference benchmarks (pytest-llmbench)")
    add_options(group, parser)


def pytest_configure(config: pytest.Config) -> None:
    settings = config.stash[SETTINGS_KEY] = resolve_settings(config)
    if settings.threads is not None:
        import torch

        torch.set_num_threads(settings.threads)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """The combinations that the matrix file's ``exclude`` leaves out, so that none goes missing unseen."""
    if SETTINGS_KEY not in config.stash:
        return []
    matrix = _settings(config).matrix
    excluded = matrix.excluded()
    if not excluded:
        return []
    sizes: dict[str, list[str]] = {}
    for combination in excluded:
        sizes.setdefault(" ".join(combination.load_key), []).append(f"bs{combination.batch_size}")
    shown = ", ".join(f"{key} ({' '.join(batch)})" for key, batch in sizes.items())
    return [f"llmbench: [matrix] exclude in {matrix.source} leaves out {len(excluded)} combination(s): {shown}"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The LLM figures of every combination, next to pytest-benchmark's own timing table."""
    config = terminalreporter.config
    benchmarks = [bench.as_dict(include_data=False) for bench in benchmark_storage.session_benchmarks(config)]
    lines = metrics_table.render(benchmarks)
    if lines:
        terminalreporter.write_sep("-", "llmbench: LLM inference figures (median of timed rounds)")
        for line in lines:
            terminalreporter.write_line(line)


def _settings(config: pytest.Config) -> Settings:
    return config.stash[SETTINGS_KEY]


def skip_reason(combination: Combination) -> str | None:
    """Why a combination cannot run here (asked of its backend, then of the probes, at collection), or None."""
    model = combination.model
    if combination.precision in model.unsupported:
        return model.unsupported[combination.precision]
    backend = get_backend(combination.backend)
    reason = backend.unavailable_reason(model, combination.precision, combination.device)
    return reason or probes_unavailable_reason(combination.device)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that asks for ``llm_combination`` (or ``llm_load_combination``) with the matrix.

    A combination on the prompt-length axis whose length does not fit its model's context is skipped too."""
    if not {COMBINATION_ARG, LOAD_COMBINATION_ARG} & set(metafunc.fixturenames):
        return
    settings = _settings(metafunc.config)
    too_long = {c.id: collection_reason(c, settings) for c in settings.matrix.combinations()}
    combinations = settings.combinations(runs=lambda c: too_long[c.id] is None)
    for argname in (COMBINATION_ARG, LOAD_COMBINATION_ARG):
        if argname not in metafunc.fixturenames:
            continue
        reasons: dict[tuple[str, str, str], str | None] = {}
        params = []
        for combination in combinations:
            key = combination.load_key
            if argname == LOAD_COMBINATION_ARG and key in reasons:
                continue
            if key not in reasons:
                reasons[key] = skip_reason(combination)
            reason = reasons[key]
            if reason is None and argname == COMBINATION_ARG:
                reason = too_long[combination.id]
            name = combination.id if argname == COMBINATION_ARG else combination.load_id
            marks = [pytest.mark.skip(reason=f"{name}: {reason}")] if reason else []
            params.append(pytest.param(combination, id=name, marks=marks))
        metafunc.parametrize(argname, params)


def load_key_of(item: pytest.Item) -> tuple[str, str, str] | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    combination = callspec.params.get(COMBINATION_ARG, callspec.params.get(LOAD_COMBINATION_ARG))
    return combination.load_key if isinstance(combination, Combination) else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run each loaded model's tests together, in matrix order, so it is loaded once and freed early."""
    groups: dict[object, list[pytest.Item]] = {}
    for index, item in enumerate(items):
        key = load_key_of(item)
        groups.setdefault(key if key is not None else ("item", index), []).append(item)
    items[:] = [item for group in groups.values() for item in group]


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Release a model after the last test that uses it."""
    key = load_key_of(item)
    if key is None or MODELS_KEY not in item.config.stash:
        return
    if nextitem is None or load_key_of(nextitem) != key:
        item.config.stash[MODELS_KEY].release(key)


@pytest.fixture(scope="session")
def llmbench_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved settings of this session (matrix, rounds, data and cache paths)."""
    return _settings(pytestconfig)


@pytest.fixture(scope="session")
def llmbench_models(
    pytestconfig: pytest.Config, llmbench_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoadedModels]:
    """The session's model cache: each (model, precision, device) is loaded once, freed after its last test.

    With ``--llmbench-isolation=process`` (the default) each model is loaded in a worker process of its
    own (see docs/isolation.md); its log is under pytest's temporary directory.
    """
    settings = llmbench_settings
    workers = None
    if settings.isolation.value == "process":
        workers = WorkerLoader(tmp_path_factory.mktemp("llmbench-workers"), settings.threads, settings.worker_timeout_s)
        models = LoadedModels(settings.cache_dir, loader=workers.load, preparer=workers.prepare)
    else:
        here = InProcessLoader(settings.threads)
        models = LoadedModels(settings.cache_dir, loader=here.load, preparer=here.prepare)
    pytestconfig.stash[MODELS_KEY] = models
    yield models
    models.release_all()
    if workers is not None:
        workers.close()
    del pytestconfig.stash[MODELS_KEY]


@pytest.fixture
def llm(request: pytest.FixtureRequest, llm_combination: Combination, llmbench_models: LoadedModels) -> LoadedModel:
    """The model of this test's combination, loaded (once per session) and ready on its device.

    A combination that turns out not to load here (weights not available offline, ...) is skipped
    with the reason; one whose worker died or hung fails with the reason.
    """
    capture = request.config.pluginmanager.getplugin("capturemanager")
    first_load = not llmbench_models.is_loaded(llm_combination.load_key)
    # The first load may convert or assemble weights for a minute: let its progress lines through.
    quiet = capture.global_and_fixture_disabled() if first_load and capture else contextlib.nullcontext()
    try:
        with quiet:
            return llmbench_models.get(llm_combination)
    except BackendUnavailable as error:
        pytest.skip(f"{llm_combination.id}: {error}")
    except WorkerFailed as error:
        pytest.fail(f"{llm_combination.id}: {error}", pytrace=False)


@pytest.fixture(scope="session")
def llmbench_peak_bandwidth(llmbench_settings: Settings) -> PeakBandwidths:
    """Peak memory bandwidth per device, for ``mbu``: ``--llmbench-peak-bandwidth`` or measured once."""
    return PeakBandwidths(llmbench_settings.peak_bandwidth.value)


@pytest.fixture
def llm_benchmark(
    benchmark: Any,
    llm: LoadedModel,
    llm_combination: Combination,
    llmbench_settings: Settings,
    llmbench_models: LoadedModels,
    llmbench_peak_bandwidth: PeakBandwidths,
) -> GenerateBenchmark:
    """Times ``generate`` on this test's combination and saves every figure in ``extra_info``.

    Use ``llm_benchmark.run(llm, prompts, max_new_tokens)``. For a model in a worker the rounds are
    timed in the worker, and pytest-benchmark records those times.
    """
    return WorkerGenerateBenchmark(
        benchmark=benchmark,
        combination=llm_combination,
        probes=probes_for(llm_combination.device),
        peak_bandwidth=llmbench_peak_bandwidth.metric(llm_combination.device),
        load_s=llmbench_models.load_time(llm_combination.load_key),
        rounds=llmbench_settings.rounds.value,
        warmup_rounds=llmbench_settings.warmup_rounds.value,
    )
