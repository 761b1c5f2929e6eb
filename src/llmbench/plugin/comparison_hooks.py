"""Comparisons with each combination's reference, from saved outputs: the reference run, the check of the
matrix file's references, and the comparison at the end of the session.

When pytest starts, ``--llmbench-reference-run`` (a run id or a run file) is read, and every reference the
matrix file declares must be a combination of the matrix or have outputs in that run (a usage error naming
the file and the key otherwise). At the end of the session, before pytest-benchmark saves the run, every
benchmark with a quality pass is compared with its reference's saved outputs (this session's, else the
reference run's: :func:`llmbench.quality.comparison.recompare`), so a reference that ran after it counts
too; one that ran nowhere is n/a with the reason (``llmbench merge`` compares across shards). See
docs/quality.md, "References and comparisons".
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any

import pytest

from llmbench import benchmark_storage
from llmbench.config.matrix import check_references
from llmbench.config.settings import SETTINGS_KEY, raw_value, resolve_path
from llmbench.quality.comparison import SESSION_SOURCE, OutputKey, OutputSet, recompare, reference_run_outputs
from llmbench.runs import RunError, find_run, parse_run_id

__all__ = ["REFERENCE_FLAG", "REFERENCE_RUN_KEY", "llmbench_reference_outputs"]

REFERENCE_FLAG = "--llmbench-reference-run"
#: The reference run as notes name it ("run 0003"), and its outputs; None without the option.
REFERENCE_RUN_KEY = pytest.StashKey[tuple[str, dict[OutputKey, OutputSet]] | None]()


def _reference_run(config: pytest.Config) -> tuple[str, dict[OutputKey, OutputSet]] | None:
    """The run of ``--llmbench-reference-run`` and its outputs; a usage error naming the option, the value and
    where it came from for a run that is not there, cannot be read or has no outputs."""
    raw = raw_value(config, REFERENCE_FLAG)
    if raw is None:
        return None
    where = f"{REFERENCE_FLAG}: {raw.value!r} (from {raw.origin})"
    try:
        run_id = parse_run_id(raw.value)
        if run_id is not None and not raw.value.endswith(".json"):
            path = find_run(benchmark_storage.file_storage_path(config), run_id, None, raw.origin)
        else:
            path = resolve_path(config, raw)
        label, outputs = reference_run_outputs(path)
    except benchmark_storage.NotFileStorage as error:
        raise pytest.UsageError(f"{where}: a run id needs a file storage ({error}); give the run's file") from None
    except RunError as error:
        raise pytest.UsageError(f"{where}: {error}") from None
    if not outputs:
        raise pytest.UsageError(
            f"{where}: the run {path} saved no per-item outputs (was it run with --llmbench-quality-items=0?); "
            "name a run with a quality pass"
        )
    return label, outputs


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Read the reference run and check the matrix file's references before any model loads."""
    if SETTINGS_KEY not in config.stash:
        return
    found = config.stash[REFERENCE_RUN_KEY] = _reference_run(config)
    raw = raw_value(config, REFERENCE_FLAG)
    check_references(
        config.stash[SETTINGS_KEY].matrix,
        available=set(found[1]) if found else (),
        run=found[0] if found else None,
        run_origin=raw.origin if raw else "",
    )


@pytest.fixture(scope="session")
def llmbench_reference_outputs(pytestconfig: pytest.Config) -> Mapping[OutputKey, OutputSet]:
    """The outputs of ``--llmbench-reference-run`` by (model, precision, device, data set); empty without it."""
    found = pytestconfig.stash.get(REFERENCE_RUN_KEY, None)
    return {} if found is None else found[1]


def _absent_note(config: pytest.Config) -> Callable[[Mapping[str, Any], str], str]:
    """The n/a note of a reference that ran neither in this session nor in the reference run."""
    found = config.stash.get(REFERENCE_RUN_KEY, None)
    sharded = raw_value(config, "--llmbench-shard") is not None

    def note(info: Mapping[str, Any], reference: str) -> str:
        elsewhere = f" nor is in the reference run {found[0]}" if found else ""
        shard = " (it may run in another shard: llmbench merge compares them)" if sharded else ""
        return f"n/a: the reference {reference} did not run in this session{elsewhere}{shard}"

    return note


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Generator[None]:
    """Before pytest-benchmark's wrapper saves the run: compare every combination with its reference, from the
    outputs the session saved (and the reference run's)."""
    config = session.config
    if SETTINGS_KEY in config.stash:
        found = config.stash.get(REFERENCE_RUN_KEY, None)
        infos = [bench.extra_info for bench in benchmark_storage.session_benchmarks(config)]
        recompare(infos, SESSION_SOURCE, found[1] if found else None, _absent_note(config))
    return (yield)
