"""Options of the plugin: one group, one prefix, each mirrored as an ini key, resolved in one place.

Precedence: command line > ini file > matrix file > built-in default. Every resolved value remembers
where it came from, so an error can say "unknown precision 'bf61' (from --llmbench-precision on the
command line)".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

T = TypeVar("T")

PREFIX = "llmbench"


def _ini_name(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


@dataclass(frozen=True)
class Option:
    """One option: a command-line flag mirrored by an ini key of the same name with underscores."""

    flag: str
    metavar: str
    help: str
    default: str | None = None

    @property
    def dest(self) -> str:
        return _ini_name(self.flag)

    @property
    def ini(self) -> str:
        return _ini_name(self.flag)


OPTIONS: tuple[Option, ...] = (
    Option(
        "--llmbench-matrix",
        "PATH",
        "The matrix file (TOML) declaring models, precisions, devices and batch sizes. "
        "Relative to the rootdir. Default: %(default)r",
        "benchmarks/matrix.toml",
    ),
    Option(
        "--llmbench-model",
        "NAMES",
        "Comma list of model names to run instead of the matrix file's (registry or matrix-file names). "
        "Default: the matrix file's list",
    ),
    Option(
        "--llmbench-precision",
        "NAMES",
        "Comma list of precisions (fp32, bf16, fp16, int8, nf4, or a GGUF type such as q4_k_m). "
        "Default: the matrix file's list",
    ),
    Option(
        "--llmbench-device",
        "NAMES",
        "Comma list of devices (cpu, cuda, mps). Default: the matrix file's list",
    ),
    Option(
        "--llmbench-batch-size",
        "INTS",
        "Comma list of batch sizes (positive integers). Default: the matrix file's list",
    ),
    Option(
        "--llmbench-max-new-tokens",
        "INT",
        "Tokens generated per sequence in timed calls, for every model. "
        "Default: each model's own setting (32 for gemma3-270m)",
    ),
    Option(
        "--llmbench-rounds",
        "INT",
        "Timed rounds per combination (pytest-benchmark pedantic rounds). Default: %(default)r",
        "5",
    ),
    Option(
        "--llmbench-warmup-rounds",
        "INT",
        "Untimed warm-up rounds before the timed ones. Default: %(default)r",
        "1",
    ),
    Option(
        "--llmbench-peak-bandwidth",
        "RATE",
        "Peak memory bandwidth for MBU, e.g. 26GB/s, 3.35TB/s or 24GiB/s (bytes/s without a unit). "
        "Default: measured once per session and device",
    ),
    Option(
        "--llmbench-data",
        "PATH",
        "Summarization data set (JSONL or CSV with fields id, text, reference). "
        "Default: the shipped data set (llmbench/data/summaries.jsonl)",
    ),
    Option(
        "--llmbench-quality-items",
        "N",
        "Items of the data set summarised once per model, precision and device for ROUGE and drift: "
        "a number (the first N), 'all', or 0 to measure no quality. Default: %(default)r",
        "all",
    ),
    Option(
        "--llmbench-quality-batch-size",
        "INT",
        "Batch size of the quality generation (outside the timed rounds). Default: %(default)r",
        "4",
    ),
    Option(
        "--llmbench-quality-target",
        "SHARE",
        "Share of the reference precision's ROUGE a precision must keep (MLPerf asks 0.99 of FP32). "
        "Default: %(default)r",
        "0.99",
    ),
    Option(
        "--llmbench-outputs-dir",
        "DIR",
        "Where the generated texts of each combination are written (one JSONL file per model, "
        "precision and device). Default: .benchmarks/outputs/<UTC date and time of the session>",
    ),
    Option(
        "--llmbench-threads",
        "INT",
        "CPU threads for inference (torch.set_num_threads and llama.cpp n_threads). "
        "Default: torch's default (the number of cores)",
    ),
    Option(
        "--llmbench-baseline",
        "WHICH",
        "What the gate compares with: 'last' (the latest saved run), 'window:N' (per-metric medians over "
        "the last N runs with the same machine fingerprint), a run id (e.g. 0003) or a run file. "
        "Default: %(default)r",
        "last",
    ),
    Option(
        "--llmbench-drift-history",
        "N",
        "How many saved runs with this machine's fingerprint (the baseline and those before it) show the "
        "drift between runs: a speed change is a regression only beyond their range of run medians widened "
        "by the threshold. 1 uses the baseline alone and the documented default drift (5.3%). "
        "Default: %(default)r",
        "10",
    ),
    Option(
        "--llmbench-fail",
        "RULES",
        "Comma list of per-metric rules overriding the defaults, e.g. "
        "decode_tok_s:-5%,peak_rss_bytes:+10%,rougeLsum:-0.01 (sign: the bad direction). "
        "Default: the built-in rules (see README)",
    ),
    Option(
        "--llmbench-fingerprint",
        "MODE",
        "When the baseline's machine differs: 'warn' (compare, never fail on it), 'strict' (fail) or "
        "'ignore'. Default: %(default)r",
        "warn",
    ),
    Option(
        "--llmbench-verdict",
        "PATH",
        "Also write the gate's verdict as markdown to this file (e.g. for a pull-request comment). "
        "Default: none ($GITHUB_STEP_SUMMARY gets it when set)",
    ),
    Option(
        "--llmbench-report",
        "DIR",
        "Write the HTML and markdown report of this run and its history to DIR at the end of the session. "
        "Default: none",
    ),
    Option(
        "--llmbench-shard",
        "K/N",
        "Run only shard K of N (1-based) of the matrix: each combination in exactly one shard, a model's "
        "combinations kept together. Default: the whole matrix",
    ),
    Option(
        "--llmbench-cache-dir",
        "DIR",
        "Where converted models and assembled GGUF files are cached (also LLMBENCH_CACHE_DIR). "
        "Default: ~/.cache/llmbench",
    ),
)


def add_options(group: Any, parser: pytest.Parser | None = None) -> None:
    """Add every option to an argparse-like group; with a pytest parser, mirror each as an ini key.

    The command-line tool reuses this with an :class:`argparse.ArgumentParser`.
    """
    for option in OPTIONS:
        group.addoption(
            option.flag,
            dest=option.dest,
            metavar=option.metavar,
            default=None,
            # argparse %-formats help texts: escape the literal % of texts such as "-5%".
            help=option.help.replace("%(default)r", repr(option.default)).replace("%", "%%"),
        )
        if parser is not None:
            parser.addini(option.ini, help=option.help.split(". ")[0], default=None)


@dataclass(frozen=True)
class Setting(Generic[T]):
    """A resolved value and where it came from (for error messages)."""

    value: T
    origin: str
    #: "cli", "ini" or "default": relative paths from an ini file are relative to that file.
    kind: str = "default"


#: A usage error naming the option, the bad value, where it came from and what is allowed.
SettingError = pytest.UsageError


def raw_setting(config: pytest.Config, option: Option) -> Setting[str] | None:
    """The option's raw text from the command line or the ini file, or None where neither sets it."""
    cli = config.getoption(option.dest, default=None)
    if cli is not None:
        return Setting(str(cli), f"{option.flag} on the command line", "cli")
    ini = config.getini(option.ini)
    if ini not in (None, "", []):
        where = config.inipath.name if config.inipath else "the ini file"
        return Setting(str(ini).strip(), f"{option.ini} in {where}", "ini")
    return None


def option_named(flag: str) -> Option:
    for option in OPTIONS:
        if option.flag == flag:
            return option
    raise KeyError(flag)


def _parse_int(text: str, what: str, origin: str, minimum: int, expected: str, below: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SettingError(f"{what}: {text!r} is not an integer (from {origin}); expected {expected}") from None
    if value < minimum:
        raise SettingError(f"{what}: {value} is {below} (from {origin}); expected {expected}")
    return value


def parse_positive_int(text: str, what: str, origin: str) -> int:
    return _parse_int(text, what, origin, 1, "a positive integer", "not positive")


def parse_non_negative_int(text: str, what: str, origin: str) -> int:
    return _parse_int(text, what, origin, 0, "0 or more", "negative")


def parse_comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def resolved(config: pytest.Config, flag: str, parse: Callable[[str, str], T], fallback: Setting[T]) -> Setting[T]:
    """Resolve one option: command line > ini > ``fallback`` (matrix file or built-in default)."""
    raw = raw_setting(config, option_named(flag))
    if raw is None:
        return fallback
    return Setting(parse(raw.value, raw.origin), raw.origin, raw.kind)


def default_cache_dir() -> Path:
    env = os.environ.get("LLMBENCH_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/llmbench").expanduser()


_RATE_UNITS = {
    "": 1.0, "b/s": 1.0,
    "kb/s": 1e3, "mb/s": 1e6, "gb/s": 1e9, "tb/s": 1e12,
    "kib/s": 2.0**10, "mib/s": 2.0**20, "gib/s": 2.0**30, "tib/s": 2.0**40,
}  # fmt: skip


def split_number_unit(text: str) -> tuple[str, str]:
    """``"26 GB/s"`` -> ``("26", "gb/s")``: the number and the lower-cased unit after it ("" if none)."""
    number = text.strip()
    for index, char in enumerate(number):
        if char.isalpha():
            return number[:index].strip(), number[index:].strip().lower()
    return number, ""


def parse_rate(text: str, what: str, origin: str) -> float:
    """A bandwidth such as ``26GB/s`` or ``24GiB/s`` (or plain bytes per second) in bytes/s."""
    number, unit = split_number_unit(text)
    try:
        value = float(number) * _RATE_UNITS[unit]
    except (ValueError, KeyError):
        raise SettingError(
            f"{what}: {text!r} is not a bandwidth (from {origin}); expected e.g. 26GB/s, 3.35TB/s, 24GiB/s "
            "or bytes per second"
        ) from None
    if not value > 0 or value == float("inf"):
        raise SettingError(f"{what}: {text!r} must be positive (from {origin})")
    return value
