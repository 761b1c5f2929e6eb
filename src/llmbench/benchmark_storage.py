"""The one adapter to pytest-benchmark: every contact with it, its private names included, is here.

pytest-benchmark (docs/design.md) times the rounds, keeps the session's benchmarks and saves each run
as ``<storage>/<machine id>/NNNN_<name>.json``. What llmbench needs of it:

- the storage folder a session saves to (:func:`file_storage_path`, ``file://`` storage only);
- the session (:func:`benchmark_session`, its public plugin name) and its benchmarks;
- the raw round times of a fixture (:func:`round_times`) and the timer swap that lets a worker time the
  rounds (:func:`fixture_timer`, :func:`set_fixture_timer`);
- the run JSON and the stats it holds, as pytest-benchmark writes them (:func:`stats_json`,
  :func:`run_json`, :func:`commit_info_at`), machine and commit info from its hooks (:func:`machine_info`,
  :func:`commit_info`);
- the saved runs of a folder (:func:`saved_run_files`, :func:`latest_runs`, :func:`query`), the machine id
  (:func:`machine_id`, :func:`machine_id_of`) and the atomic save (:func:`make_saves_atomic`);
- the machine_info keys llmbench adds, which pytest-benchmark's own comparison never sees
  (:func:`own_keys_set_aside`).

pytest-benchmark is imported only inside the functions that use it: the layout helpers need the
standard library only (``llmbench runs`` runs without pytest-benchmark installed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

__all__ = [
    "DEFAULT_STORAGE",
    "OWN_KEY_PREFIX",
    "RUN_GLOB",
    "NotFileStorage",
    "benchmark_session",
    "commit_info",
    "commit_info_at",
    "file_storage_path",
    "fixture_timer",
    "latest_runs",
    "machine_id",
    "machine_id_of",
    "machine_info",
    "make_saves_atomic",
    "own_keys_set_aside",
    "pytest_benchmark_version",
    "query",
    "round_times",
    "run_json",
    "saved_run_files",
    "session_benchmarks",
    "set_fixture_timer",
    "stats_json",
    "storage_uri",
]

#: pytest-benchmark's default ``--benchmark-storage``.
DEFAULT_STORAGE = "file://./.benchmarks"
#: How pytest-benchmark names saved runs (``0001_<commit>_<date>.json``), as a storage query.
RUN_GLOB = "[0-9][0-9][0-9][0-9]_"
#: The name pytest-benchmark registers its session under (``config.pluginmanager.get_plugin``).
PLUGIN_NAME = "pytest-benchmark"
#: Every machine_info key llmbench adds starts with this (``llmbench``, ``llmbench_failed``, ...).
OWN_KEY_PREFIX = "llmbench"
#: The BenchmarkFixture attribute its runner reads the timer from (pytest-benchmark 4 and 5).
_FIXTURE_TIMER = "_timer"


class NotFileStorage(ValueError):
    """``--benchmark-storage`` names a storage other than a folder (elasticsearch): ``uri`` is its value."""

    def __init__(self, uri: str) -> None:
        super().__init__(f"not file storage: {uri!r}")
        self.uri = uri


# --- the storage folder ------------------------------------------------------------------------------


def storage_uri(config: pytest.Config) -> str:
    """``--benchmark-storage`` as given (pytest-benchmark's default ``file://./.benchmarks``)."""
    return str(config.getoption("benchmark_storage", default=DEFAULT_STORAGE) or DEFAULT_STORAGE)


def file_storage_path(config: pytest.Config, base: Path | None = None) -> Path:
    """The folder pytest-benchmark saves this session's runs in, absolute: ``--benchmark-storage`` (a
    ``file://`` URI or a bare path, as pytest-benchmark reads it), ``~`` expanded, a relative path taken
    from ``base`` (default: where pytest was started). Raises :class:`NotFileStorage` for other storages."""
    uri = storage_uri(config)
    if "://" in uri and not uri.startswith("file://"):
        raise NotFileStorage(uri)
    path = Path(uri.removeprefix("file://")).expanduser()
    return path if path.is_absolute() else (base or config.invocation_params.dir) / path


# --- the session and its fixture ------------------------------------------------------------------


def benchmark_session(config: pytest.Config) -> Any | None:
    """pytest-benchmark's session (its ``BenchmarkSession``), registered as the plugin ``pytest-benchmark``
    from its ``pytest_configure`` on; None before that or without pytest-benchmark."""
    return config.pluginmanager.get_plugin(PLUGIN_NAME)


def session_benchmarks(config: pytest.Config) -> list[Any]:
    """The session's benchmark fixtures that recorded rounds (pytest-benchmark keeps an empty one for a test
    that never called ``benchmark``)."""
    return [bench for bench in getattr(benchmark_session(config), "benchmarks", None) or () if bench]


def round_times(benchmark: Any) -> list[float]:
    """The seconds of each timed round of a benchmark fixture (none before its rounds or when disabled)."""
    stats = getattr(benchmark, "stats", None)
    return list(stats.stats.data) if stats else []


def fixture_timer(benchmark: Any) -> Callable[[], float]:
    """The timer the fixture's runner reads before and after each round. Raises :class:`RuntimeError` where
    this pytest-benchmark keeps it elsewhere."""
    if not hasattr(benchmark, _FIXTURE_TIMER):
        raise RuntimeError(
            f"this pytest-benchmark's fixture has no {_FIXTURE_TIMER!r}: cannot time rounds in a worker; "
            "use --llmbench-isolation=none"
        )
    timer: Callable[[], float] = getattr(benchmark, _FIXTURE_TIMER)
    return timer


def set_fixture_timer(benchmark: Any, timer: Callable[[], float]) -> None:
    """Make the fixture's next runner read ``timer`` (see :func:`fixture_timer`)."""
    setattr(benchmark, _FIXTURE_TIMER, timer)


# --- machine and commit info, the run JSON -------------------------------------------------------------


def machine_info(config: pytest.Config) -> dict[str, Any]:
    """machine_info as pytest-benchmark saves it: its generate hook, then every update hook (llmbench's too)."""
    info: dict[str, Any] = config.hook.pytest_benchmark_generate_machine_info(config=config)
    config.hook.pytest_benchmark_update_machine_info(config=config, machine_info=info)
    return info


def commit_info(config: pytest.Config) -> dict[str, Any]:
    """commit_info as pytest-benchmark's generate hook makes it (of the current folder's repository)."""
    info: dict[str, Any] = config.hook.pytest_benchmark_generate_commit_info(config=config)
    return info


def commit_info_at(root: Path) -> dict[str, Any]:
    """pytest-benchmark's commit_info of the repository at ``root``."""
    from pytest_benchmark.utils import get_commit_info

    with contextlib.chdir(root):
        info: dict[str, Any] = get_commit_info()  # type: ignore[no-untyped-call]
    return info


def pytest_benchmark_version() -> str:
    import pytest_benchmark

    return str(pytest_benchmark.__version__)


def stats_json(latencies: Sequence[float]) -> dict[str, Any]:
    """A benchmark's ``stats`` as pytest-benchmark saves it with ``--benchmark-save-data``: its statistics
    over ``latencies`` (one iteration per round) and the rounds themselves."""
    from pytest_benchmark.stats import Stats

    stats = Stats()  # type: ignore[no-untyped-call]
    for seconds in latencies:
        stats.update(seconds)  # type: ignore[no-untyped-call]
    out: dict[str, Any] = stats.as_dict()  # type: ignore[no-untyped-call]
    out.update(data=list(latencies), iterations=1)
    return out


def run_json(
    machine: Mapping[str, Any], commit: Mapping[str, Any], benchmarks: Sequence[Mapping[str, Any]], when: str
) -> dict[str, Any]:
    """A whole run as pytest-benchmark saves it (``when``: its ISO ``datetime``)."""
    return {
        "machine_info": dict(machine), "commit_info": dict(commit), "benchmarks": list(benchmarks),
        "datetime": when, "version": pytest_benchmark_version(),
    }  # fmt: skip


@contextlib.contextmanager
def own_keys_set_aside(*infos: MutableMapping[str, Any] | None) -> Iterator[None]:
    """Take llmbench's keys (:data:`OWN_KEY_PREFIX`) out of each machine_info for the block, then put them back.

    pytest-benchmark warns "Benchmark machine_info is different" on any difference between the current
    machine_info and a saved run's; what llmbench adds (the fingerprint, the failed tests, shards, A/B
    marks) is compared by the gate itself, so pytest-benchmark compares without it.
    """
    aside: list[tuple[MutableMapping[str, Any], dict[str, Any]]] = []
    for info in infos:
        if isinstance(info, MutableMapping):
            own = {key: info.pop(key) for key in [k for k in info if str(k).startswith(OWN_KEY_PREFIX)]}
            aside.append((info, own))
    try:
        yield
    finally:
        for info, own in aside:
            info.update(own)


# --- saved runs and the machine id -----------------------------------------------------------------------


def machine_id() -> str:
    """pytest-benchmark's id of this machine, its storage subfolder (``Linux-CPython-3.11-64bit``)."""
    from pytest_benchmark.utils import get_machine_id

    return str(get_machine_id())  # type: ignore[no-untyped-call]


def machine_id_of(info: Mapping[str, Any]) -> str:
    """The machine id of the machine a run was saved on, from its machine_info (``system``,
    ``python_implementation``, ``python_version``; the bits from ``machine``): its storage subfolder."""
    version = ".".join(str(info.get("python_version", "0.0")).split(".")[:2])
    bits = "64" if "64" in str(info.get("machine", "")) else "32"
    return f"{info.get('system', 'Unknown')}-{info.get('python_implementation', 'Python')}-{version}-{bits}bit"


def _run_number(path: Path) -> int | None:
    head = path.name.split("_", 1)[0]
    return int(head) if len(head) == 4 and head.isdigit() and path.name.endswith(".json") else None


def saved_run_files(storage: Path, machine: str | None = None, *, resolve: bool = True) -> list[Path]:
    """The files pytest-benchmark's file storage finds for its run query (``NNNN_*.json`` in the folder of
    ``machine``, in every machine's folder with None, and in ``storage`` itself), sorted as it sorts them
    (file name, then folder); under the resolved folder, as it gives them, unless not ``resolve``. Never
    creates a folder (its storage would)."""
    if not storage.is_dir():
        return []
    if resolve:
        storage = storage.resolve()
    pattern = RUN_GLOB + "*.json"
    files = [file for folder in storage.glob(machine or "*") for file in folder.glob(pattern)]
    files += list(storage.glob(pattern))
    return sorted(files, key=lambda file: (file.name, file.parent))


def latest_runs(storage: Path, machine: str | None = None, count: int = 1) -> list[Path]:
    """The newest ``count`` saved runs (highest ``NNNN_`` number) of a storage folder, oldest first, under
    ``storage`` as given."""
    files = [file for file in saved_run_files(storage, machine, resolve=False) if _run_number(file) is not None]
    return files[-count:] if count > 0 else []


def query(storage: Path, selector: str) -> list[Path]:
    """pytest-benchmark's own query of a file storage: a run file, or a glob of file names (``0003``,
    ``machine/0003``). Raises :class:`ValueError` for a selector it does not accept."""
    from pytest_benchmark.storage.file import FileStorage

    files = FileStorage(storage, logger=None).query(selector)  # type: ignore[no-untyped-call]
    return [Path(file) for file in files]


def make_saves_atomic(session: Any, write_text: Callable[[Path, str], None]) -> None:
    """Make pytest-benchmark's file storage save each run through ``write_text(path, text)`` (an atomic
    write: its own ``FileStorage.save`` writes the file in place, so a session killed while saving would
    leave half a run). Same name, number and JSON as pytest-benchmark's; other storages are left alone."""
    from pytest_benchmark.storage.file import FileStorage
    from pytest_benchmark.utils import safe_dumps

    storage = getattr(session, "storage", None)
    if not isinstance(storage, FileStorage):
        return

    def save(output_json: Any, save: str) -> None:
        # _next_num: pytest-benchmark's own numbering (FileStorage.save uses it the same way).
        output_file = Path(storage.get(f"{storage._next_num}_{save}.json"))  # type: ignore[no-untyped-call]
        if output_file.exists():
            raise FileExistsError(f"{output_file}: a saved run of that number exists already")
        write_text(output_file, safe_dumps(output_json, ensure_ascii=True, indent=4))  # type: ignore[no-untyped-call]
        if storage.logger is not None:
            storage.logger.info(f"Saved benchmark data in: {output_file}")

    storage.save = save  # type: ignore[method-assign]
