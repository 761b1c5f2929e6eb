"""``--llmbench-report=DIR``: write the report at the end of the session, after pytest-benchmark saved the run.

pytest-benchmark saves the run in its ``pytest_sessionfinish`` hook wrapper, before the wrapped hooks
run; this module's ``pytest_sessionfinish`` (``trylast``) therefore finds the run on disk and reports
it with the history before it. Without ``--benchmark-autosave`` / ``--benchmark-save`` nothing is
saved: the report is built from this session's benchmarks (``as_dict()``) and the saved history.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from llmbench import benchmark_storage
from llmbench.config.settings import SettingError, raw_value, resolve_path
from llmbench.gate import Verdict

__all__ = ["REPORT_DIR_KEY", "pytest_configure", "pytest_sessionfinish"]

REPORT_DIR_KEY = pytest.StashKey[Path]()
#: The JSON pytest-benchmark saved in this session (captured from its public update hook).
SAVED_JSON_KEY = pytest.StashKey[dict[str, Any]]()


def pytest_configure(config: pytest.Config) -> None:
    setting = raw_value(config, "--llmbench-report")
    if setting is None or not setting.value.strip():
        return
    if importlib.util.find_spec("matplotlib") is None:
        raise SettingError(
            f"--llmbench-report: writing the report needs matplotlib, which is not installed "
            f"(from {setting.origin}); install pytest-llmbench[report]"
        )
    # A path from the command line stays as given (the end-of-session line shows it so).
    path = resolve_path(config, setting) if setting.kind == "ini" else Path(setting.value).expanduser()
    if path.exists() and not path.is_dir():
        raise SettingError(f"--llmbench-report: {str(path)!r} is a file (from {setting.origin}); expected a directory")
    config.stash[REPORT_DIR_KEY] = path


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    """Remember what pytest-benchmark is about to save (its datetime identifies the saved file)."""
    if REPORT_DIR_KEY in config.stash:
        config.stash[SAVED_JSON_KEY] = output_json


def _storage_dir(config: pytest.Config) -> Path | None:
    """pytest-benchmark's storage folder (None for a storage that is not a folder: no history then)."""
    try:
        return benchmark_storage.file_storage_path(config)
    except benchmark_storage.NotFileStorage:
        return None


def _session_json(config: pytest.Config) -> dict[str, Any]:
    """This session's benchmarks as an unsaved run (machine and commit info as pytest-benchmark makes them)."""
    benchmarks = [b.as_dict(include_data=True) for b in benchmark_storage.session_benchmarks(config)]
    machine_info = benchmark_storage.machine_info(config)
    commit_info = benchmark_storage.commit_info(config)
    from datetime import UTC, datetime

    return {
        "machine_info": machine_info,
        "commit_info": commit_info,
        "benchmarks": benchmarks,
        "datetime": datetime.now(UTC).isoformat(),
    }


def _session_verdict(config: pytest.Config) -> Verdict | None:
    """The verdict the gate gave in this session (its ``pytest_sessionfinish`` runs before this one)."""
    from llmbench.plugin.gate_hooks import GATE_KEY

    state = config.stash.get(GATE_KEY, None)
    return None if state is None else state.verdict


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if REPORT_DIR_KEY not in config.stash or hasattr(config, "workerinput"):
        return
    from llmbench.report.frame import DEFAULT_HISTORY, history_of, load_runs, session_run
    from llmbench.report.html import write_report
    from llmbench.runs import SavedRun

    output = config.stash[REPORT_DIR_KEY]
    storage = _storage_dir(config)
    saved: Mapping[str, Any] | None = config.stash.get(SAVED_JSON_KEY, None)
    runs = load_runs(storage) if storage is not None and storage.is_dir() else []
    current: SavedRun | None = None
    if saved is not None:
        current = next((run for run in reversed(runs) if run.datetime == saved.get("datetime")), None)
    if current is None:
        has_session = benchmark_storage.benchmark_session(config) is not None
        data = _session_json(config) if has_session else {"benchmarks": []}
        current = session_run(data)
        history = [*runs[-(DEFAULT_HISTORY - 1) :], current]
    else:
        history = history_of(current, runs, DEFAULT_HISTORY)
    files = write_report(current, history, output, verdict=_session_verdict(config))
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"llmbench report: {files.index} and {files.markdown}")
