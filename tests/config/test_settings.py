"""The one settings resolver (marker > command line > environment > ini) and the CLI built from the option table."""

from __future__ import annotations

import argparse

import pytest

from llmbench.config.options import OPTIONS, add_cli_argument, parse_positive_int

ORIGINS_TEST = """
import pytest

from llmbench.config.settings import option_value, raw_value


def test_origins(pytestconfig, llmbench_settings):
    print("ROUNDS", llmbench_settings.rounds.value, "FROM", llmbench_settings.origins["--llmbench-rounds"])
    print("CACHE", llmbench_settings.cache_dir.name, "FROM", llmbench_settings.origins["--llmbench-cache-dir"])
    print("HISTORY", option_value(pytestconfig, "--llmbench-drift-history").value)


@pytest.mark.llmbench_fail("decode_tok_s:-9%")
def test_marker(request):
    setting = raw_value(request.config, "--llmbench-fail", request.node)
    print("FAIL", setting.value, "FROM", setting.origin, setting.kind)
"""


def test_each_value_remembers_where_it_came_from(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini("[pytest]\nllmbench_rounds = 3\nllmbench_cache_dir = from-ini\nllmbench_fail = ttft_s:+50%\n")
    pytester.makepyfile(test_origins=ORIGINS_TEST)
    monkeypatch.setenv("LLMBENCH_CACHE_DIR", str(pytester.path / "from-env"))
    result = pytester.runpytest_inprocess("-s", "--llmbench-fail=latency_s:+20%")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*ROUNDS 3 FROM llmbench_rounds in tox.ini",
            "CACHE from-env FROM LLMBENCH_CACHE_DIR in the environment",
            "HISTORY 10",
            "*FAIL decode_tok_s:-9% FROM the llmbench_fail marker of test_origins.py::test_marker marker",
        ]
    )


def test_command_line_beats_environment_beats_ini(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini("[pytest]\nllmbench_cache_dir = from-ini\n")
    pytester.makepyfile(test_origins=ORIGINS_TEST)
    monkeypatch.delenv("LLMBENCH_CACHE_DIR", raising=False)
    result = pytester.runpytest_inprocess("-s", "-k", "origins", "--llmbench-rounds=7")
    result.stdout.fnmatch_lines(
        ["*ROUNDS 7 FROM --llmbench-rounds on the command line", "CACHE from-ini FROM *tox.ini"]
    )
    monkeypatch.setenv("LLMBENCH_CACHE_DIR", str(pytester.path / "from-env"))
    result = pytester.runpytest_inprocess("-s", "-k", "origins", f"--llmbench-cache-dir={pytester.path / 'cli'}")
    result.stdout.fnmatch_lines(["CACHE cli FROM --llmbench-cache-dir on the command line"])


def test_a_bad_value_names_the_option_and_its_origin(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nllmbench_quality_target = 2\n")
    result = pytester.runpytest_inprocess("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--llmbench-quality-target: '2' is not a share in (0, 1] (from llmbench_quality_target in tox.ini)*"]
    )


def test_cli_argument_takes_metavar_default_help_and_validator_from_the_table() -> None:
    parser = argparse.ArgumentParser(prog="llmbench compare")
    action = add_cli_argument(parser, "--llmbench-drift-history")
    assert action.option_strings == ["--drift-history"]
    assert action.metavar == "N"
    assert "Default: '10'" in (action.help or "")
    assert parser.parse_args([]).drift_history == 10
    assert parser.parse_args(["--drift-history", "3"]).drift_history == 3
    add_cli_argument(parser, "--llmbench-fail", "--fail", parse=lambda text, what, origin: text.upper())
    assert parser.parse_args(["--fail", "x:+5%"]).fail == "X:+5%"
    parser.format_help()  # the literal % of help texts is escaped


def test_cli_argument_rejects_a_bad_value_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="llmbench compare")
    add_cli_argument(parser, "--llmbench-drift-history", parse=parse_positive_int)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--drift-history", "0"])
    assert exit_info.value.code == 2
    assert "--drift-history: 0 is not positive (from --drift-history on the command line)" in capsys.readouterr().err


def test_every_option_can_be_added_to_a_command() -> None:
    parser = argparse.ArgumentParser(prog="llmbench")
    for option in OPTIONS:
        add_cli_argument(parser, option.flag)
    parser.format_help()
