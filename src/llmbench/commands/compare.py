"""``llmbench compare BASELINE CURRENT``: the gate's verdict on two saved runs (see docs/gate.md).

Exit status: 0 no regression, 1 a regression (or a strict machine mismatch), 2 bad input, with one
line naming it. Two sides of one ``llmbench ab`` pair are decided as a pair (:mod:`llmbench.ab.verdict`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmbench.ab.verdict import compare_pair, is_pair
from llmbench.commands.arguments import add_storage_argument, add_verbose_argument
from llmbench.config.options import SettingError, add_cli_argument, parse_positive_int
from llmbench.gate.baseline import GateError, choose_baseline, parse_baseline
from llmbench.gate.compare import compare_runs, publish_markdown
from llmbench.gate.rules import PAIRED_RULES, with_first_baseline_allowance
from llmbench.gate.settings import parse_fingerprint_mode, parse_first_baseline_allowance, resolve_rules
from llmbench.runs import RunError, find_run, list_runs, load_run, machine_id_here, parse_run_id, run_number

__all__ = ["add_compare_arguments", "compare_main"]


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``llmbench compare BASELINE CURRENT``: the gate's options as the plugin declares them
    (:func:`llmbench.config.options.add_cli_argument`); their text is parsed by :func:`compare_main`, so a
    bad value is one clear line and exit status 2."""
    parser.add_argument(
        "baseline", metavar="BASELINE",
        help="a run file, a run id (e.g. 0003, looked up in --storage), 'last' (the run saved before CURRENT) "
        "or 'window:N' (the N runs saved before CURRENT with its machine fingerprint, per-metric medians)",
    )  # fmt: skip
    parser.add_argument("current", metavar="CURRENT", help="a run file or a run id (e.g. 0004)")
    for flag in ("--llmbench-fail", "--llmbench-fingerprint", "--llmbench-verdict", "--llmbench-drift-history",
                 "--llmbench-first-baseline-allowance"):  # fmt: skip
        add_cli_argument(parser, flag, parse=_as_given)
    add_storage_argument(parser, help="pytest-benchmark's storage folder, for run ids")
    add_verbose_argument(parser)


def _as_given(text: str, what: str, origin: str) -> str:
    return text


def _resolve_current(text: str, storage: Path, machine_id: str) -> Path:
    run_id = parse_run_id(text)
    if run_id is not None and not text.endswith(".json"):
        return find_run(storage, run_id, machine_id, "CURRENT")
    return Path(text).expanduser()


def compare_main(args: argparse.Namespace) -> int:
    """``llmbench compare``: 0 no regression, 1 a regression (or strict machine mismatch), 2 bad input."""
    storage = Path(args.storage).expanduser()
    machine_id = machine_id_here()
    try:
        rules = resolve_rules(args.fail, "--fail on the command line", "--fail")
        if args.first_baseline_allowance is not None:
            allowance = parse_first_baseline_allowance(args.first_baseline_allowance, "--first-baseline-allowance")
            rules = with_first_baseline_allowance(rules, allowance)
        paired_rules = resolve_rules(args.fail, "--fail on the command line", "--fail", base=PAIRED_RULES)
        mode = parse_fingerprint_mode(args.fingerprint, "--fingerprint on the command line", "--fingerprint")
        spec = parse_baseline(args.baseline, "BASELINE on the command line", "BASELINE")
        drift_history = parse_positive_int(args.drift_history, "--drift-history", "the command line")
        current_path = _resolve_current(args.current, storage, machine_id)
        try:
            current = load_run(current_path)
        except RunError as error:
            raise GateError(f"current run {error}") from None
        candidates: list[Path] = []
        if spec.kind != "run":
            if current.number is not None:
                folder = current_path.parent
                candidates = [p for p in list_runs(folder.parent, folder.name) if (run_number(p) or 0) < current.number]
            else:
                candidates = list_runs(storage, machine_id)
        baseline = choose_baseline(
            spec, candidates, current.fingerprint, storage=storage, machine_id=machine_id, drift_history=drift_history
        )
    except (GateError, RunError, SettingError) as error:
        print(f"llmbench compare: error: {error}", file=sys.stderr)
        return 2
    if spec.kind == "run" and len(baseline.runs) == 1 and is_pair(baseline.runs[0], current):
        verdict = compare_pair(baseline.runs[0], current, paired_rules)  # two sides of one llmbench ab pair
    else:
        verdict = compare_runs(baseline, current, rules, mode)
    for line in verdict.lines(verbose=args.verbose):
        print(line)
    verdict_path = Path(args.verdict).expanduser() if args.verdict else None
    for problem in publish_markdown(verdict, verdict_path):
        print(f"llmbench compare: error: {problem}", file=sys.stderr)
        return 2
    return verdict.exit_status
