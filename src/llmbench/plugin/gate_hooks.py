"""The regression gate's pytest hooks, kept thin: the work is in :mod:`llmbench.gate`.

- Every saved run gets ``machine_info["llmbench"]``, the machine fingerprint, and
  ``machine_info["llmbench_failed"]``, the benchmarks whose test failed (id -> reason), where any did:
  the gate reports them as failed, not as removed.
- ``@pytest.mark.llmbench_fail("decode_tok_s:-10%")`` sets a benchmark's own rules (over ``--llmbench-fail``
  and the defaults); its text is saved in the benchmark's ``extra_info`` so ``llmbench compare`` uses it.
- The gate runs when ``--benchmark-compare`` is given or ``--llmbench-baseline`` is set (command line or
  ini). The saved runs are listed and the baseline loaded at configure time, before this session's run
  can be saved by ``--benchmark-autosave``; so ``last`` is the latest run saved *before* this session.
- After pytest-benchmark has finished (its ``pytest_sessionfinish`` wrapper saves the run first), the
  session's benchmarks are compared; a regression makes the exit status ``TESTS_FAILED``; the verdict
  is printed in the terminal summary and written as markdown to ``--llmbench-verdict`` and
  ``$GITHUB_STEP_SUMMARY``. pytest-benchmark's own ``--benchmark-compare-fail`` is untouched.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import pytest

from llmbench import gate, runs
from llmbench.fingerprint import machine_fingerprint
from llmbench.runs import RunError, list_runs


@dataclass
class GateState:
    """What the hooks keep between configure and the end of the session."""

    settings: gate.GateSettings
    baseline: gate.Baseline | None = None
    verdict: gate.Verdict | None = None
    messages: list[str] = field(default_factory=list)


GATE_KEY = pytest.StashKey[GateState]()
FINGERPRINT_KEY = pytest.StashKey[dict[str, Any]]()
#: Benchmarks whose test failed in this session: test id (pytest-benchmark's fullname) -> the reason.
FAILED_KEY = pytest.StashKey[dict[str, str]]()
INTERRUPTED_KEY = pytest.StashKey[bool]()


def _fingerprint(config: pytest.Config) -> dict[str, Any]:
    if FINGERPRINT_KEY not in config.stash:
        config.stash[FINGERPRINT_KEY] = machine_fingerprint()
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
    candidates = list_runs(settings.storage, settings.machine_id)
    try:
        state.baseline = gate.choose_baseline(
            settings.baseline, candidates, _fingerprint(config),
            storage=settings.storage, machine_id=settings.machine_id, drift_history=settings.drift_history,
        )  # fmt: skip
    except (gate.GateError, RunError) as error:
        raise pytest.UsageError(str(error)) from None


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Save the machine fingerprint with every run (``machine_info["llmbench"]``), and the failed benchmarks."""
    machine_info["llmbench"] = _fingerprint(config)
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
    runs.save_runs_atomically(getattr(session.config, "_benchmarksession", None))
    return (yield)


def _reason(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(getattr(crash, "message", "") or report.longreprtext or "failed")
    first = text.strip().splitlines()[0] if text.strip() else "failed"
    return first if len(first) <= 300 else first[:299] + "…"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Remember a benchmark whose test failed (setup or call), with the reason, for the run and the gate."""
    report = yield
    if report.failed and report.when in ("setup", "call") and "benchmark" in getattr(item, "fixturenames", ()):
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
    """Check every ``llmbench_fail`` marker before anything runs."""
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
    """Compare this session with the baseline (pytest-benchmark has saved the run by now)."""
    config = session.config
    state = config.stash.get(GATE_KEY, None)
    if state is None or state.baseline is None:
        return
    benchmark_session = getattr(config, "_benchmarksession", None)
    benchmarks = [bench for bench in getattr(benchmark_session, "benchmarks", []) if bench]
    failed = config.stash.get(FAILED_KEY, {})
    if not benchmarks and not failed:
        state.messages.append("no benchmark ran in this session: nothing to compare")
        return
    include_data = bool(config.getoption("benchmark_save_data", default=False))
    current = gate.current_run((b.as_dict(include_data=include_data) for b in benchmarks), _fingerprint(config), failed)
    settings = state.settings
    state.verdict = verdict = gate.compare_runs(state.baseline, current, settings.rules, settings.fingerprint)
    state.messages.extend(gate.publish_markdown(verdict, settings.verdict_path))
    if verdict.failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(wrapper=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Generator[None]:
    """Print the verdict after pytest-benchmark's table (even when its own compare-fail check raised)."""
    try:
        return (yield)
    finally:
        state = terminalreporter.config.stash.get(GATE_KEY, None)
        if state is not None and (state.verdict is not None or state.messages):
            terminalreporter.write_sep("=", "llmbench regression gate")
            for message in state.messages:
                terminalreporter.write_line(f"llmbench gate: {message}")
            if state.verdict is not None:
                lines = state.verdict.lines(verbose=terminalreporter.verbosity > 0)
                for line in lines[:-1]:
                    terminalreporter.write_line(line)
                failed = state.verdict.failed
                terminalreporter.write_line(lines[-1], red=failed, green=not failed, bold=True)
