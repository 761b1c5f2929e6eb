"""The option table: one group, one prefix, each option mirrored as an ini key, with its validator.

The pytest plugin adds every option (:func:`add_options`); the ``llmbench`` command builds its flags from
the same entries (:func:`add_cli_argument`). Values are resolved in :mod:`llmbench.config.settings`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from llmbench.units import split_number_unit

T = TypeVar("T")

PREFIX = "llmbench"
#: A validator: ``parse(text, what, origin)`` returns the value or raises :data:`SettingError` naming
#: ``what`` (the flag), the bad text and ``origin`` (where it came from).
Parse = Callable[[str, str, str], T]


def _ini_name(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


#: A usage error naming the option, the bad value, where it came from and what is allowed.
SettingError = pytest.UsageError


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


def parse_names(text: str, what: str, origin: str) -> tuple[str, ...]:
    """A non-empty comma list of names."""
    names = tuple(parse_comma_list(text))
    if not names:
        raise SettingError(f"{what}: empty list (from {origin}); give a comma list")
    return names


def parse_batch_sizes(text: str, what: str, origin: str) -> tuple[int, ...]:
    """A non-empty comma list of positive integers."""
    return tuple(parse_positive_int(value, what, origin) for value in parse_names(text, what, origin))


def parse_prompt_lengths(text: str, what: str, origin: str) -> tuple[int, ...]:
    """A non-empty comma list of prompt lengths in tokens (positive integers)."""
    return parse_batch_sizes(text, what, origin)


def parse_items(text: str, what: str, origin: str) -> int | None:
    """A number of data-set items, or ``all`` (None)."""
    if text.strip().lower() == "all":
        return None
    return parse_non_negative_int(text, what, origin)


def parse_share(text: str, what: str, origin: str) -> float:
    """A share in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise SettingError(f"{what}: {text!r} is not a share in (0, 1] (from {origin}); e.g. 0.99")
    return value


#: Where each loaded model runs (see docs/isolation.md).
ISOLATION_MODES = ("process", "none")


def parse_isolation(text: str, what: str, origin: str) -> str:
    """``process`` (a worker process per loaded model) or ``none`` (in the pytest process)."""
    mode = text.strip().lower()
    if mode not in ISOLATION_MODES:
        raise SettingError(f"{what}: {text!r} is not an isolation mode (from {origin}); expected process or none")
    return mode


#: Which pass is timed item by item (see docs/metrics.md, Per-item figures).
PER_ITEM_MODES = ("quality", "batch-sizes", "off")


def parse_per_item(text: str, what: str, origin: str) -> str:
    """``quality``, ``batch-sizes`` or ``off``."""
    mode = text.strip().lower()
    if mode not in PER_ITEM_MODES:
        raise SettingError(
            f"{what}: {text!r} is not a per-item mode (from {origin}); expected one of {', '.join(PER_ITEM_MODES)}"
        )
    return mode


def parse_seconds(text: str, what: str, origin: str) -> float:
    """A positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise SettingError(f"{what}: {text!r} is not a positive number of seconds (from {origin})")
    return value


_RATE_UNITS = {
    "": 1.0, "b/s": 1.0,
    "kb/s": 1e3, "mb/s": 1e6, "gb/s": 1e9, "tb/s": 1e12,
    "kib/s": 2.0**10, "mib/s": 2.0**20, "gib/s": 2.0**30, "tib/s": 2.0**40,
}  # fmt: skip


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


@dataclass(frozen=True)
class Option:
    """One option: a command-line flag mirrored by an ini key of the same name with underscores."""

    flag: str
    metavar: str
    help: str
    default: str | None = None
    #: The validator of the option's text (None: the text as given; the gate's and the shard's options are
    #: parsed by their own modules, which pass their parser to the resolver).
    parse: Parse[Any] | None = None
    #: An environment variable that sets the option (below the command line, above the ini file).
    env: str | None = None
    #: A marker whose first argument sets the option for one test (above everything else).
    marker: str | None = None

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
        parse=parse_names,
    ),
    Option(
        "--llmbench-precision",
        "NAMES",
        "Comma list of precisions (fp32, bf16, fp16, int8, nf4, fp4, or a GGUF type such as q4_k_m). "
        "Default: the matrix file's list",
        parse=parse_names,
    ),
    Option(
        "--llmbench-device",
        "NAMES",
        "Comma list of devices (cpu, cuda, mps). Default: the matrix file's list",
        parse=parse_names,
    ),
    Option(
        "--llmbench-batch-size",
        "INTS",
        "Comma list of batch sizes (positive integers). Default: the matrix file's list",
        parse=parse_batch_sizes,
    ),
    Option(
        "--llmbench-prompt-tokens",
        "INTS",
        "Comma list of prompt lengths in tokens, an axis: each test's prompts are built to exactly that many "
        "tokens of the model's tokenizer from the data set's text (docs/matrix-and-models.md). "
        "Default: the matrix file's prompt_tokens, else none (the data set's own prompts)",
        parse=parse_prompt_lengths,
    ),
    Option(
        "--llmbench-max-new-tokens",
        "INT",
        "Tokens generated per sequence in timed calls, for every model. "
        "Default: each model's own setting (32 for gemma3-270m)",
        parse=parse_positive_int,
    ),
    Option(
        "--llmbench-rounds",
        "INT",
        "Timed rounds per combination (pytest-benchmark pedantic rounds). Default: %(default)r",
        "5",
        parse=parse_positive_int,
    ),
    Option(
        "--llmbench-warmup-rounds",
        "INT",
        "Untimed warm-up rounds before the timed ones. Default: %(default)r",
        "1",
        parse=parse_non_negative_int,
    ),
    Option(
        "--llmbench-isolation",
        "MODE",
        "Where each loaded model runs: 'process' (a worker process of its own per model, precision and "
        "device: its memory peaks are its own, a crash fails only its combinations) or 'none' (in the "
        "pytest process, for debugging). Default: %(default)r",
        "process",
        parse=parse_isolation,
    ),
    Option(
        "--llmbench-worker-timeout",
        "SECONDS",
        "With --llmbench-isolation=process: how long a worker may take over one generate call before it "
        "counts as hung and is killed (its combinations fail). Default: %(default)r",
        "600",
        parse=parse_seconds,
    ),
    Option(
        "--llmbench-peak-bandwidth",
        "RATE",
        "Peak memory bandwidth for MBU, e.g. 26GB/s, 3.35TB/s or 24GiB/s (bytes/s without a unit). "
        "Default: measured once per session and device",
        parse=parse_rate,
    ),
    Option(
        "--llmbench-data",
        "NAMES-OR-PATHS",
        "Comma list of data sets instead of the matrix file's datasets: a shipped set's name (summaries) or a "
        "file (.jsonl, .csv, .parquet or .txt; text, optional id and reference; docs/datasets.md). "
        "Default: the matrix file's list, else the shipped summaries set",
        parse=parse_names,
    ),
    Option(
        "--llmbench-quality-items",
        "N",
        "Items of the data set summarised once per model, precision and device for ROUGE and drift: "
        "a number (the first N), 'all', or 0 to measure no quality. Default: %(default)r",
        "all",
        parse=parse_items,
    ),
    Option(
        "--llmbench-quality-batch-size",
        "INT",
        "Batch size of the quality generation (outside the timed rounds). Default: %(default)r",
        "4",
        parse=parse_positive_int,
    ),
    Option(
        "--llmbench-per-item",
        "MODE",
        "Per-item figures (latency, TTFT, tokens, decode tok/s, peak memory of each item's call): 'quality' "
        "(the quality pass's calls, at the quality batch size: nearly free), 'batch-sizes' (instead, each test "
        "times every quality item at its own batch size: one more pass of the data set per test) or 'off'. "
        "Default: %(default)r",
        "quality",
        parse=parse_per_item,
    ),
    Option(
        "--llmbench-quality-target",
        "SHARE",
        "Share of the reference's ROUGE (and accuracy) a combination must keep; the reference is its model's "
        "reference_precision on the same device unless the matrix file names another model, precision or device "
        "(MLPerf asks 0.99 of FP32). "
        "Default: %(default)r",
        "0.99",
        parse=parse_share,
    ),
    Option(
        "--llmbench-reference-run",
        "RUN",
        "A saved run whose per-item outputs serve as the references this session does not run (another "
        "device, machine or shard): a run id in --benchmark-storage (e.g. 0003) or a run file. A reference that "
        "runs in this session is taken from the session (docs/quality.md). Default: none",
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
        parse=parse_positive_int,
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
        parse=parse_positive_int,
    ),
    Option(
        "--llmbench-first-baseline-allowance",
        "PERCENT",
        "Where fewer than 2 saved runs show this machine's drift between runs (a first baseline), a speed change "
        "is a regression only beyond its threshold plus this allowance, and noisy below it; 'off': only noisy. "
        "Default: the allowance measured on shared machines (docs/gate.md, A first baseline)",
    ),
    Option(
        "--llmbench-fail",
        "RULES",
        "Comma list of per-metric rules overriding the defaults, e.g. "
        "decode_tok_s:-5%,peak_rss_bytes:+10%,rougeLsum:-0.01 (sign: the bad direction). "
        "Default: the built-in rules (see docs/gate.md)",
        marker="llmbench_fail",
    ),
    Option(
        "--llmbench-fingerprint",
        "MODE",
        "When the baseline's machine differs: 'warn' (compare, never fail on it), 'strict' (fail) or "
        "'ignore'. Default: %(default)r",
        "warn",
    ),
    Option(
        "--llmbench-gate-scope",
        "SCOPE",
        "Which benchmarks the gate judges: 'llm' (those with llmbench's figures; plain pytest-benchmark "
        "benchmarks are left to pytest-benchmark's own --benchmark-compare-fail) or 'all' (plain ones too, "
        "on their latency). Default: %(default)r",
        "llm",
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
        "--llmbench-shard-costs",
        "PATH",
        "With --llmbench-shard: saved runs whose measured test durations balance the shards, a run file or "
        "a storage folder (its newest 5 runs; e.g. the history). Tests no saved run measured are estimated. "
        "Every shard must be given the same runs (also LLMBENCH_SHARD_COSTS). Default: every cost estimated",
        env="LLMBENCH_SHARD_COSTS",
    ),
    Option(
        "--llmbench-cache-dir",
        "DIR",
        "Where converted models and assembled GGUF files are cached (also LLMBENCH_CACHE_DIR). "
        "Default: ~/.cache/llmbench",
        env="LLMBENCH_CACHE_DIR",
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
            help=_help(option),
        )
        if parser is not None:
            parser.addini(option.ini, help=option.help.split(". ")[0], default=None)


def _help(option: Option) -> str:
    # argparse %-formats help texts: escape the literal % of texts such as "-5%".
    return option.help.replace("%(default)r", repr(option.default)).replace("%", "%%")


def option_named(flag: str) -> Option:
    for option in OPTIONS:
        if option.flag == flag:
            return option
    raise KeyError(flag)


class _ParseAction(argparse.Action):
    """Stores ``parse(value, flag, origin)``; a bad value exits with status 2 and the parser's message."""

    def __init__(self, option_strings: Sequence[str], dest: str, parse: Parse[Any], **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.parse = parse

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        flag = option_string or self.dest
        try:
            setattr(namespace, self.dest, self.parse(str(values), flag, f"{flag} on the command line"))
        except SettingError as error:
            parser.error(str(error))


def add_cli_argument(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    cli_flag: str | None = None,
    *,
    parse: Parse[Any] | None = None,
    help: str | None = None,
) -> argparse.Action:
    """Add the plugin option ``flag`` to an ``llmbench`` subcommand: the same metavar, default, help (with
    the default) and validator as the plugin's option.

    ``cli_flag`` names it on the command (default: ``flag`` without ``llmbench-``); ``parse`` replaces
    the table's validator (the gate's options are parsed in :mod:`llmbench.gate`); ``help`` replaces the
    text. The value is stored parsed; the default is parsed too. A bad value exits with status 2::

        parser = argparse.ArgumentParser(prog="llmbench compare")
        add_cli_argument(parser, "--llmbench-drift-history")   # adds --drift-history N
        parser.parse_args(["--drift-history", "3"]).drift_history  # 3
    """
    option = option_named(flag)
    name = cli_flag or flag.replace(f"--{PREFIX}-", "--", 1)
    validator = parse or option.parse
    text = _help(option) if help is None else help.replace("%", "%%")
    if validator is None:
        return parser.add_argument(name, metavar=option.metavar, default=option.default, help=text)
    default = None if option.default is None else validator(option.default, name, "the default")
    return parser.add_argument(
        name, metavar=option.metavar, default=default, help=text, action=_ParseAction, parse=validator
    )


def default_cache_dir() -> Path:
    """Where models are cached without a ``--llmbench-cache-dir`` (or ``LLMBENCH_CACHE_DIR``)."""
    return Path("~/.cache/llmbench").expanduser()
