"""The regression gate's pytest hooks, kept thin: the work is in :mod:`llmbench.gate`.

- Every saved run gets ``machine_info["llmbench"]``, the machine fingerprint, and
  ``machine_info["llmbench_failed"]``, the benchmarks whose test failed (id -> reason), where any did:
  the gate reports them as failed, not as removed.
- ``@pytest.mark.llmbench_fail("decode_tok_s:-10%")`` sets a benchmark's own rules (over ``--llmbench-fail``
  and the defaults); its text is saved in the benchmark's ``extra_info`` so ``llmbench compare`` uses it.
- The gate runs when ``--benchmark-compare`` is given or ``--llmbench-baseline`` is set (command line or
  ini). The saved runs are listed (and a named baseline run found) at configure time, before this
  session's run can be saved by ``--benchmark-autosave``; so ``last`` is the latest run saved *before*
  this session. A ``--benchmark-compare`` value that names no run the gate can read is pytest-benchmark's
  to warn about: the gate then says it has no baseline, and never errors for it.
- After pytest-benchmark has finished (its ``pytest_sessionfinish`` wrapper saves the run first), the
  session's LLM benchmarks (those with llmbench's figures; plain pytest-benchmark ones too with
  ``--llmbench-gate-scope=all``) are compared; a regression makes the exit status ``TESTS_FAILED``; the
  verdict is printed in the terminal summary and written as markdown to ``--llmbench-verdict`` and
  ``$GITHUB_STEP_SUMMARY``. pytest-benchmark's own ``--benchmark-compare-fail`` is untouched.
- A session with no LLM test (a plain pytest-benchmark project) gets nothing from the gate: no section,
  no machine_info keys, no torch import. What llmbench adds to machine_info is set aside while
  pytest-benchmark compares machine_info (docs/gate.md, "Plain pytest-benchmark benchmarks").
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from llmbench import benchmark_storage, gate, runs
from llmbench.fingerprint import machine_fingerprint
from llmbench.metrics import METRICS_KEY
from llmbench.plugin.keys import COMBINATION_ARG, LOAD_COMBINATION_ARG
from llmbench.runs import RunError, SavedRun, find_run, list_runs, load_run, parse_run_id, run_number

#: The fixtures that make a test an LLM test (one of this plugin's, not a plain pytest-benchmark one).
LLM_FIXTURES = frozenset({"llm", "llm_benchmark", COMBINATION_ARG, LOAD_COMBINATION_ARG})


@dataclass
class GateState:
    """What the hooks keep between configure and the end of the session."""

    settings: gate.GateSettings
    #: The saved runs listed at configure time, and the baseline to load from them at the end (a named
    #: run already found: its file), None where the gate has no baseline.
    candidates: list[Path] = field(default_factory=list)
    spec: gate.BaselineSpec | None = None
    baseline: gate.Baseline | None = None
    verdict: gate.Verdict | None = None
    messages: list[str] = field(default_factory=list)
    #: Whether the session had benchmarks for the gate to judge: its section is printed only then.
    judged: bool = False


GATE_KEY = pytest.StashKey[GateState]()
FINGERPRINT_KEY = pytest.StashKey[dict[str, Any]]()
#: Benchmarks whose test failed in this session: test id (pytest-benchmark's fullname) -> the reason.
FAILED_KEY = pytest.StashKey[dict[str, str]]()
INTERRUPTED_KEY = pytest.StashKey[bool]()
#: Whether this session collected an LLM test (see :data:`LLM_FIXTURES`).
LLM_TESTS_KEY = pytest.StashKey[bool]()


def is_llm_test(item: pytest.Item) -> bool:
    """A test of this plugin's: it asks for a model, a combination or ``llm_benchmark``, or has the gate's
    ``llmbench_fail`` marker (a plain benchmark that asks to be gated)."""
    fixtures = getattr(item, "fixturenames", ())
    return not LLM_FIXTURES.isdisjoint(fixtures) or item.get_closest_marker(gate.MARKER) is not None


def _gates_plain(config: pytest.Config) -> bool:
    state = config.stash.get(GATE_KEY, None)
    return state is not None and state.settings.scope == "all"


def _adds_to_runs(config: pytest.Config) -> bool:
    """Whether the saved run gets llmbench's machine_info keys: an LLM session, or plain benchmarks gated."""
    return config.stash.get(LLM_TESTS_KEY, False) or _gates_plain(config)


def _fingerprint(config: pytest.Config) -> dict[str, Any]:
    if FINGERPRINT_KEY not in config.stash:
        # torch (for the GPUs and threads) only in a session of LLM tests, or where it is imported already.
        config.stash[FINGERPRINT_KEY] = machine_fingerprint(torch_fields=config.stash.get(LLM_TESTS_KEY, False))
    return config.stash[FINGERPRINT_KEY]


@pytest.hookimpl(trylast=True)  # after llmbench.plugin has set the thread count the fingerprint records
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{gate.MARKER}(rules): this benchmark's own regression rules, in the --llmbench-fail syntax, "
        "e.g. 'decode_tok_s:-10%'; they win over --llmbench-fail and the defaults",
    )
    settings = gate.gate_settings(config)
    state = config.stash[GATE_KEY] = GateState(settings)
    if settings.inactive_reason:
        state.messages.append(f"not run: {settings.inactive_reason}")
    if not settings.active or not config.pluginmanager.hasplugin("benchmark"):
        return
    assert settings.storage is not None
    state.candidates = list_runs(settings.storage, settings.machine_id)
    if settings.no_baseline:
        state.messages.append(settings.no_baseline)
        return
    try:
        state.spec = _found(settings.baseline, state.candidates, settings.storage, settings.machine_id)
    except (gate.GateError, RunError) as error:
        if not settings.baseline.origin.startswith("--benchmark-compare"):
            raise pytest.UsageError(str(error)) from None
        # pytest-benchmark warns that it found nothing to compare with and goes on; so does the gate.
        state.messages.append(f"no baseline: {error}")


def _found(spec: gate.BaselineSpec, candidates: list[Path], storage: Path, machine_id: str) -> gate.BaselineSpec:
    """``spec`` with a named run found now, as its file (so that the run this session saves is never it).
    Raises :class:`gate.GateError` or :class:`RunError` (the messages of :func:`gate.choose_baseline`)."""
    if spec.kind != "run":
        return spec
    if parse_run_id(spec.run) is not None and not spec.run.endswith(".json"):
        path = next((p for p in reversed(candidates) if run_number(p) == int(spec.run)), None)
        if path is None:
            path = find_run(storage, spec.run, machine_id, spec.origin)
    else:
        path = Path(spec.run).expanduser()
    try:
        load_run(path)
    except RunError as error:
        raise gate.GateError(f"baseline {error} (from {spec.origin})") from None
    return replace(spec, run=str(path))


@pytest.hookimpl(wrapper=True, optionalhook=True)
def pytest_benchmark_compare_machine_info(
    config: pytest.Config, benchmarksession: Any, machine_info: dict[str, Any], compared_benchmark: dict[str, Any]
) -> Generator[None]:
    """pytest-benchmark compares machine_info without llmbench's keys (the gate compares fingerprints)."""
    with benchmark_storage.own_keys_set_aside(machine_info, compared_benchmark.get("machine_info")):
        return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Save the machine fingerprint with every run of LLM tests (``machine_info["llmbench"]``), and the
    failed benchmarks; a plain pytest-benchmark session's runs get nothing."""
    if not _adds_to_runs(config):
        return
    machine_info[runs.FINGERPRINT_KEY] = _fingerprint(config)
    failed = config.stash.get(FAILED_KEY, {})
    if failed:
        machine_info[runs.FAILED_KEY] = dict(failed)
    if config.stash.get(INTERRUPTED_KEY, False):
        machine_info[runs.INTERRUPTED_KEY] = "KeyboardInterrupt"


@pytest.hookimpl(wrapper=True, tryfirst=True, specname="pytest_sessionfinish")
def pytest_sessionfinish_interrupted(session: pytest.Session, exitstatus: int) -> Generator[None]:
    """Before pytest-benchmark's wrapper saves the run: note an interrupted session, and make the save atomic
    (never half a saved run)."""
    session.config.stash[INTERRUPTED_KEY] = exitstatus == pytest.ExitCode.INTERRUPTED
    if _adds_to_runs(session.config):
        benchmark_storage.make_saves_atomic(benchmark_storage.benchmark_session(session.config),
                                            runs.write_text_atomically)  # fmt: skip
    return (yield)


def _reason(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(getattr(crash, "message", "") or report.longreprtext or "failed")
    first = text.strip().splitlines()[0] if text.strip() else "failed"
    return first if len(first) <= 300 else first[:299] + "…"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Remember an LLM benchmark (any benchmark with ``--llmbench-gate-scope=all``) whose test failed (setup or
    call), with the reason, for the run and the gate."""
    report = yield
    is_benchmark = "benchmark" in getattr(item, "fixturenames", ())
    judged = is_benchmark and (is_llm_test(item) or _gates_plain(item.config))
    if report.failed and report.when in ("setup", "call") and judged:
        item.config.stash.setdefault(FAILED_KEY, {})[item.nodeid] = f"{report.when}: {_reason(report)}"
    return report


def _marker_text(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker(gate.MARKER)
    if marker is None:
        return None
    if len(marker.args) != 1 or marker.kwargs or not isinstance(marker.args[0], str):
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.{gate.MARKER} takes one string of rules, e.g. "
            f"@pytest.mark.{gate.MARKER}('decode_tok_s:-10%,peak_rss_bytes:+10%'); got args={marker.args!r} "
            f"kwargs={marker.kwargs!r}"
        )
    text: str = marker.args[0]
    return text


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Check every ``llmbench_fail`` marker before anything runs; note whether the session has LLM tests."""
    config.stash[LLM_TESTS_KEY] = any(is_llm_test(item) for item in items)
    for item in items:
        text = _marker_text(item)
        if text is None:
            continue
        try:
            gate.parse_fail_spec(text, f"the {gate.MARKER} marker of {item.nodeid}", what=gate.MARKER)
        except gate.FailSpecError as error:
            raise pytest.UsageError(str(error)) from None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Save the marker's rules in the benchmark's ``extra_info`` (so saved runs carry them)."""
    text = _marker_text(item)
    funcargs = getattr(item, "funcargs", {})
    if text is not None and "benchmark" in funcargs:
        funcargs["benchmark"].extra_info[gate.MARKER_INFO_KEY] = text


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Compare this session's LLM benchmarks with the baseline (pytest-benchmark has saved the run by now).

    A session without any (a plain pytest-benchmark project) is left alone: no section, no torch.
    """
    config = session.config
    state = config.stash.get(GATE_KEY, None)
    if state is None or not (state.settings.active or state.messages):
        return
    plain = state.settings.scope == "all"
    include_data = bool(config.getoption("benchmark_save_data", default=False))
    judged = [
        data
        for data in (bench.as_dict(include_data=include_data) for bench in benchmark_storage.session_benchmarks(config))
        if plain or _has_figures(data)
    ]
    failed = config.stash.get(FAILED_KEY, {})
    state.judged = bool(judged or failed)
    if not state.judged or state.spec is None or not state.settings.active:
        return
    settings = state.settings
    fingerprint = _fingerprint(config)
    try:
        baseline = gate.choose_baseline(
            state.spec, state.candidates, fingerprint,
            storage=settings.storage, machine_id=settings.machine_id, drift_history=settings.drift_history,
        )  # fmt: skip
    except (gate.GateError, RunError) as error:
        state.messages.append(f"no baseline: {error}")
        return
    if not plain:
        baseline = _without_plain(baseline, {*(data["fullname"] for data in judged), *failed})
    state.baseline = baseline
    current = gate.current_run(judged, fingerprint, failed)
    state.verdict = verdict = gate.compare_runs(baseline, current, settings.rules, settings.fingerprint)
    state.messages.extend(gate.publish_markdown(verdict, settings.verdict_path))
    if verdict.failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _has_figures(bench: Mapping[str, Any]) -> bool:
    """A benchmark for the gate: it carries llmbench's figures (``extra_info["metrics"]``) or its own rules
    (the ``llmbench_fail`` marker's); not a plain one."""
    extra = bench.get("extra_info")
    return isinstance(extra, Mapping) and (isinstance(extra.get(METRICS_KEY), Mapping) or gate.MARKER_INFO_KEY in extra)


def _without_plain(baseline: gate.Baseline, judged: Collection[str]) -> gate.Baseline:
    """The baseline without the plain benchmarks this session does not judge (kept: those with llmbench's
    figures, and any judged now, whose older runs may lack the figures)."""

    def llm_only(run: SavedRun) -> SavedRun:
        kept = {name: b for name, b in run.benchmarks.items() if name in judged or _has_figures(b)}
        return run if len(kept) == len(run.benchmarks) else replace(run, benchmarks=kept)

    return replace(baseline, runs=tuple(map(llm_only, baseline.runs)),
                   drift_runs=tuple(map(llm_only, baseline.drift_runs)))  # fmt: skip


@pytest.hookimpl(wrapper=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Generator[None]:
    """Print the verdict after pytest-benchmark's table (even when its own compare-fail check raised)."""
    try:
        return (yield)
    finally:
        state = terminalreporter.config.stash.get(GATE_KEY, None)
        if state is not None and state.judged and (state.verdict is not None or state.messages):
            terminalreporter.write_sep("=", "llmbench regression gate")
            for message in state.messages:
                terminalreporter.write_line(f"llmbench gate: {message}")
            if state.verdict is not None:
                lines = state.verdict.lines(verbose=terminalreporter.verbosity > 0)
                for line in lines[:-1]:
                    terminalreporter.write_line(line)
                failed = state.verdict.failed
                terminalreporter.write_line(lines[-1], red=failed, green=not failed, bold=True)
