"""The one resolver of settings: marker > command line > environment > ini file > matrix file > default.

Every value remembers where it came from (:class:`Setting`), so an error can say "invalid X (from
llmbench_rounds in pytest.ini)". :func:`raw_value` and :func:`resolve` resolve one option (the gate,
report and shard hooks use them); :func:`resolve_settings` resolves the whole session once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import pytest

from llmbench.config.combination import Combination
from llmbench.config.matrix import Axis, Matrix, dataset_entry, load_matrix, validate
from llmbench.config.options import (
    Parse,
    SettingError,
    default_cache_dir,
    option_named,
    parse_names,
    parse_prompt_lengths,
)

__all__ = [
    "Origin",
    "Setting",
    "SettingError",
    "Settings",
    "engine_context",
    "option_value",
    "raw_value",
    "resolve",
    "resolve_path",
    "resolve_settings",
]

T = TypeVar("T")

#: Where a value came from; relative paths of an ini value are relative to the ini file's folder.
Origin = Literal["marker", "cli", "env", "ini", "matrix", "default"]


@dataclass(frozen=True)
class Setting(Generic[T]):
    """A resolved value and where it came from (``origin``: words for messages, ``kind``: the source)."""

    value: T
    origin: str
    kind: Origin = "default"


def raw_value(config: pytest.Config, flag: str, item: pytest.Item | None = None) -> Setting[str] | None:
    """The option's text and origin, or None where nothing sets it.

    Precedence: the option's marker on ``item`` (first argument) > command line > environment > ini.
    """
    option = option_named(flag)
    if item is not None and option.marker is not None:
        marker = item.get_closest_marker(option.marker)
        if marker is not None and marker.args:
            return Setting(str(marker.args[0]), f"the {option.marker} marker of {item.nodeid}", "marker")
    cli = config.getoption(option.dest, default=None)
    if cli is not None:
        return Setting(str(cli), f"{option.flag} on the command line", "cli")
    if option.env is not None and os.environ.get(option.env):
        return Setting(os.environ[option.env], f"{option.env} in the environment", "env")
    ini = config.getini(option.ini)
    if ini not in (None, "", []):
        where = config.inipath.name if config.inipath else "the ini file"
        return Setting(str(ini).strip(), f"{option.ini} in {where}", "ini")
    return None


def resolve(
    config: pytest.Config,
    flag: str,
    parse: Parse[T],
    fallback: Setting[T],
    item: pytest.Item | None = None,
) -> Setting[T]:
    """One option parsed with ``parse(text, flag, origin)``, or ``fallback`` where nothing sets it.

    ``parse`` raises :data:`SettingError` (a :class:`pytest.UsageError`) naming the flag, the bad value
    and its origin. Example: ``resolve(config, "--llmbench-drift-history", parse_positive_int,
    Setting(10, "the default"))``.
    """
    raw = raw_value(config, flag, item)
    if raw is None:
        return fallback
    return Setting(parse(raw.value, flag, raw.origin), raw.origin, raw.kind)


def option_value(config: pytest.Config, flag: str, item: pytest.Item | None = None) -> Setting[Any]:
    """One option parsed by the validator of its table entry, else its table default (also parsed)."""
    option = option_named(flag)

    def parse(text: str, what: str, origin: str) -> Any:
        return text if option.parse is None else option.parse(text, what, origin)

    default = None if option.default is None else parse(option.default, flag, "the default")
    return resolve(config, flag, parse, Setting(default, "the default"), item)


def resolve_path(config: pytest.Config, setting: Setting[str]) -> Path:
    """A path option's value: ``~`` expanded; relative to the ini file's folder for an ini value, else to
    the directory pytest was invoked from."""
    path = Path(setting.value).expanduser()
    if path.is_absolute():
        return path
    base = config.inipath.parent if setting.kind == "ini" and config.inipath else config.invocation_params.dir
    return base / path


@dataclass(frozen=True)
class Settings:
    """Every option of the session, resolved once (the plugin keeps it in its stash)."""

    matrix: Matrix
    max_new_tokens: Setting[int | None]
    rounds: Setting[int]
    warmup_rounds: Setting[int]
    cache_dir: Path
    peak_bandwidth: Setting[float | None]
    quality_items: int | None
    quality_batch_size: int
    quality_target: float
    outputs_dir: Path
    threads: int | None
    #: "process" (a worker per loaded model) or "none" (in the pytest process); see docs/isolation.md.
    isolation: Setting[str]
    #: Seconds a worker may take over one generate call before it is killed as hung.
    worker_timeout_s: float
    #: flag -> where its value came from (e.g. "--llmbench-rounds on the command line", "the default").
    origins: Mapping[str, str]

    def combinations(self, runs: Callable[[Combination], bool] | None = None) -> list[Combination]:
        """The matrix's combinations; on the prompt-length axis each carries the engine context its load needs
        (``context_tokens``, :func:`engine_context` of the longest prompt length of its model, precision and
        device), the same for every test of that load. ``runs``: whether a combination's length will run (a
        length skipped for the model's context does not size the engine's)."""
        combinations = self.matrix.combinations()
        if self.matrix.prompt_lengths is None:
            return combinations
        longest: dict[tuple[str, str, str], int] = {}
        for c in combinations:
            length = (c.prompt_length or 0) if runs is None or runs(c) else 0
            longest[c.load_key] = max(longest.get(c.load_key, 0), length)
        return [
            replace(c, context_tokens=engine_context(longest[c.load_key], self.max_new_tokens_for(c)))
            for c in combinations
        ]

    def max_new_tokens_for(self, combination: Combination) -> int:
        """The command line or ini wins, then the matrix file, then the model's own setting."""
        if self.max_new_tokens.value is not None:
            return self.max_new_tokens.value
        if self.matrix.max_new_tokens is not None:
            return self.matrix.max_new_tokens
        return combination.model.max_new_tokens


#: An engine context is rounded up to a multiple of this: llama.cpp pads its context to 256 cells with flash
#: attention, and a round size keeps a load's context the same when max_new_tokens moves a little.
CONTEXT_STEP = 256


def engine_context(longest_prompt: int, max_new_tokens: int) -> int:
    """The context an engine needs for prompts of ``longest_prompt`` tokens and ``max_new_tokens`` new ones,
    rounded up to a multiple of :data:`CONTEXT_STEP` (llama.cpp's ``n_ctx`` on the prompt-length axis)."""
    needed = longest_prompt + max_new_tokens
    return -(-needed // CONTEXT_STEP) * CONTEXT_STEP


#: Where the plugin keeps the session's :class:`Settings` (``config.stash[SETTINGS_KEY]``); llmbench ab
#: reads them there after collecting in the head side's checkout.
SETTINGS_KEY = pytest.StashKey[Settings]()


#: Options of the matrix axes: the matrix file's list unless one of these is set.
_AXES = {
    "models": "--llmbench-model",
    "precisions": "--llmbench-precision",
    "devices": "--llmbench-device",
    "batch_sizes": "--llmbench-batch-size",
}
#: Options that :func:`resolve_settings` reads (the others belong to the gate, report and shard hooks).
_SESSION_OPTIONS = (
    "--llmbench-matrix", *_AXES.values(), "--llmbench-max-new-tokens", "--llmbench-rounds",
    "--llmbench-warmup-rounds", "--llmbench-peak-bandwidth", "--llmbench-quality-items",
    "--llmbench-quality-batch-size", "--llmbench-quality-target", "--llmbench-outputs-dir",
    "--llmbench-threads", "--llmbench-cache-dir", "--llmbench-isolation", "--llmbench-worker-timeout",
)  # fmt: skip


def _matrix(config: pytest.Config) -> Matrix:
    matrix_raw = raw_value(config, "--llmbench-matrix")
    if matrix_raw is None:
        matrix = load_matrix(config.rootpath / "benchmarks" / "matrix.toml", required=False)
    else:
        matrix = load_matrix(resolve_path(config, matrix_raw), required=True)

    def axis(flag: str, current: Axis) -> Axis:
        parse = option_named(flag).parse
        assert parse is not None, flag
        value = resolve(config, flag, parse, Setting(current.values, current.origin))
        return Axis(tuple(value.value), value.origin)

    matrix = replace(
        matrix,
        models=axis("--llmbench-model", matrix.models),
        precisions=axis("--llmbench-precision", matrix.precisions),
        devices=axis("--llmbench-device", matrix.devices),
        batch_sizes=axis("--llmbench-batch-size", matrix.batch_sizes),
        datasets=_datasets(config, matrix.datasets),
        prompt_lengths=_prompt_lengths(config, matrix.prompt_lengths),
    )
    validate(matrix)
    return matrix


def _prompt_lengths(config: pytest.Config, current: Axis | None) -> Axis | None:
    """``--llmbench-prompt-tokens``: the prompt lengths instead of the matrix file's ``prompt_tokens``."""
    raw = raw_value(config, "--llmbench-prompt-tokens")
    if raw is None:
        return current
    return Axis(parse_prompt_lengths(raw.value, "--llmbench-prompt-tokens", raw.origin), raw.origin)


def _datasets(config: pytest.Config, current: Axis) -> Axis:
    """``--llmbench-data``: the data sets instead of the matrix file's, each a shipped set's name or a path
    (relative to the ini file's folder for an ini value, else to the directory pytest was invoked from)."""
    raw = raw_value(config, "--llmbench-data")
    if raw is None:
        return current
    values = parse_names(raw.value, "--llmbench-data", raw.origin)
    base = config.inipath.parent if raw.kind == "ini" and config.inipath else config.invocation_params.dir
    return Axis(tuple(dataset_entry(value, base) for value in values), raw.origin)


def resolve_settings(config: pytest.Config) -> Settings:
    """Resolve every session option; raise :class:`pytest.UsageError` naming the bad value and its origin."""
    matrix = _matrix(config)
    value = {flag: option_value(config, flag) for flag in _SESSION_OPTIONS if flag not in _AXES.values()}
    # Unset, these two fall back to each model's setting and to a measurement.
    for flag, fallback in (
        ("--llmbench-max-new-tokens", "each model's setting"),
        ("--llmbench-peak-bandwidth", "measured"),
    ):
        if value[flag].kind == "default":
            value[flag] = Setting(None, fallback)

    def path(flag: str) -> Path | None:
        raw = raw_value(config, flag)
        return resolve_path(config, raw) if raw is not None else None

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    origins = {flag: setting.origin for flag, setting in value.items()}
    origins.update({flag: getattr(matrix, field).origin for field, flag in _AXES.items()})
    origins["--llmbench-data"] = matrix.datasets.origin
    origins["--llmbench-prompt-tokens"] = matrix.prompt_lengths.origin if matrix.prompt_lengths else "no such axis"
    return Settings(
        matrix=matrix,
        max_new_tokens=value["--llmbench-max-new-tokens"],
        rounds=value["--llmbench-rounds"],
        warmup_rounds=value["--llmbench-warmup-rounds"],
        cache_dir=path("--llmbench-cache-dir") or default_cache_dir(),
        peak_bandwidth=value["--llmbench-peak-bandwidth"],
        quality_items=value["--llmbench-quality-items"].value,
        quality_batch_size=value["--llmbench-quality-batch-size"].value,
        quality_target=value["--llmbench-quality-target"].value,
        outputs_dir=path("--llmbench-outputs-dir") or config.rootpath / ".benchmarks" / "outputs" / stamp,
        threads=value["--llmbench-threads"].value,
        isolation=value["--llmbench-isolation"],
        worker_timeout_s=value["--llmbench-worker-timeout"].value,
        origins=origins,
    )
