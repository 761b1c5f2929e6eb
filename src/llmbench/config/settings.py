"""All settings of a session, resolved once from the command line, the ini file and the matrix file."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from llmbench.config.combination import Combination
from llmbench.config.matrix import Axis, Matrix, load_matrix, validate
from llmbench.config.options import (
    Setting,
    SettingError,
    default_cache_dir,
    option_named,
    parse_comma_list,
    parse_non_negative_int,
    parse_positive_int,
    parse_rate,
    raw_setting,
    resolved,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    matrix: Matrix
    max_new_tokens: Setting[int | None]
    rounds: Setting[int]
    warmup_rounds: Setting[int]
    data_path: Path | None
    cache_dir: Path
    peak_bandwidth: Setting[float | None]
    quality_items: int | None
    quality_batch_size: int
    quality_target: float
    outputs_dir: Path
    threads: int | None

    def max_new_tokens_for(self, combination: Combination) -> int:
        """The command line or ini wins, then the matrix file, then the model's own setting."""
        if self.max_new_tokens.value is not None:
            return self.max_new_tokens.value
        if self.matrix.max_new_tokens is not None:
            return self.matrix.max_new_tokens
        return combination.model.max_new_tokens


def _axis_override(config: pytest.Config, flag: str, axis: Axis) -> Axis:
    raw = raw_setting(config, option_named(flag))
    if raw is None:
        return axis
    values = parse_comma_list(raw.value)
    if not values:
        raise pytest.UsageError(f"{flag}: empty list (from {raw.origin}); give a comma list")
    if flag == "--llmbench-batch-size":
        return Axis(tuple(parse_positive_int(v, flag, raw.origin) for v in values), raw.origin)
    return Axis(tuple(values), raw.origin)


def _path(config: pytest.Config, raw: Setting[str]) -> Path:
    path = Path(raw.value).expanduser()
    if path.is_absolute():
        return path
    # Relative to the ini file's folder for ini values, else to the invocation directory.
    base = config.inipath.parent if raw.kind == "ini" and config.inipath else config.invocation_params.dir
    return base / path


def resolve_settings(config: pytest.Config) -> Settings:
    """Resolve every option; raise :class:`pytest.UsageError` naming the bad value and its origin."""
    matrix_raw = raw_setting(config, option_named("--llmbench-matrix"))
    if matrix_raw is None:
        matrix = load_matrix(config.rootpath / "benchmarks" / "matrix.toml", required=False)
    else:
        matrix = load_matrix(_path(config, matrix_raw), required=True)
    matrix = replace(
        matrix,
        models=_axis_override(config, "--llmbench-model", matrix.models),
        precisions=_axis_override(config, "--llmbench-precision", matrix.precisions),
        devices=_axis_override(config, "--llmbench-device", matrix.devices),
        batch_sizes=_axis_override(config, "--llmbench-batch-size", matrix.batch_sizes),
    )
    validate(matrix)

    def positive(flag: str) -> Setting[int]:
        option = option_named(flag)
        assert option.default is not None
        return resolved(
            config,
            flag,
            lambda text, origin: parse_positive_int(text, flag, origin),
            Setting(int(option.default), "the default"),
        )

    max_new_tokens: Setting[int | None] = resolved(
        config,
        "--llmbench-max-new-tokens",
        lambda text, origin: parse_positive_int(text, "--llmbench-max-new-tokens", origin),
        Setting(None, "each model's setting"),
    )
    warmup = resolved(
        config,
        "--llmbench-warmup-rounds",
        lambda text, origin: parse_non_negative_int(text, "--llmbench-warmup-rounds", origin),
        Setting(1, "the default"),
    )
    data_raw = raw_setting(config, option_named("--llmbench-data"))
    outputs_raw = raw_setting(config, option_named("--llmbench-outputs-dir"))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    cache_raw = raw_setting(config, option_named("--llmbench-cache-dir"))
    return Settings(
        matrix=matrix,
        max_new_tokens=max_new_tokens,
        rounds=positive("--llmbench-rounds"),
        warmup_rounds=warmup,
        data_path=_path(config, data_raw) if data_raw else None,
        cache_dir=_path(config, cache_raw) if cache_raw else default_cache_dir(),
        peak_bandwidth=resolved(
            config,
            "--llmbench-peak-bandwidth",
            lambda text, origin: parse_rate(text, "--llmbench-peak-bandwidth", origin),
            _none("measured", float),
        ),
        quality_items=resolved(config, "--llmbench-quality-items", _parse_items, _none("the default", int)).value,
        quality_batch_size=positive("--llmbench-quality-batch-size").value,
        quality_target=resolved(config, "--llmbench-quality-target", _parse_share, Setting(0.99, "the default")).value,
        threads=resolved(
            config,
            "--llmbench-threads",
            lambda text, origin: parse_positive_int(text, "--llmbench-threads", origin),
            _none("the default", int),
        ).value,
        outputs_dir=_path(config, outputs_raw) if outputs_raw else config.rootpath / ".benchmarks" / "outputs" / stamp,
    )


def _none(origin: str, kind: type[T]) -> Setting[T | None]:
    """A fallback that leaves a setting unset (typed for mypy)."""
    return Setting(None, origin)


def _parse_items(text: str, origin: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    return parse_non_negative_int(text, "--llmbench-quality-items", origin)


def _parse_share(text: str, origin: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise SettingError(f"--llmbench-quality-target: {text!r} is not a share in (0, 1] (from {origin}); e.g. 0.99")
    return value
