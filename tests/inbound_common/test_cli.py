"""The conventions both commands are built on: options with their default and variables, checked values."""

from __future__ import annotations

import argparse

import pytest

from inbound_common.cli import MEANINGS, Exit, Parser, environment, epilog, option, share, size


def parser_with(*env: str) -> argparse.ArgumentParser:
    parser = Parser(prog="tool")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run")
    option(run, "--ratio", env=env, type=share, default=0.25, help="a share")
    return parser


def test_the_first_variable_set_wins_and_the_command_line_over_both(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TOOL_RATIO", "OTHER_RATIO"):
        monkeypatch.delenv(name, raising=False)
    assert parser_with("TOOL_RATIO", "OTHER_RATIO").parse_args(["run"]).ratio == 0.25
    monkeypatch.setenv("OTHER_RATIO", "50%")
    assert parser_with("TOOL_RATIO", "OTHER_RATIO").parse_args(["run"]).ratio == 0.5
    monkeypatch.setenv("TOOL_RATIO", "0.75")
    assert parser_with("TOOL_RATIO", "OTHER_RATIO").parse_args(["run"]).ratio == 0.75
    assert parser_with("TOOL_RATIO", "OTHER_RATIO").parse_args(["run", "--ratio", "1%"]).ratio == 0.01


def test_help_names_the_variables_and_the_default_and_the_epilog_lists_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOOL_RATIO", raising=False)
    parser = parser_with("TOOL_RATIO", "OTHER_RATIO")
    run = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
    ratio = next(a for a in run._actions if a.dest == "ratio")
    assert ratio.help == "a share (env TOOL_RATIO, else OTHER_RATIO; default: 0.25)"
    assert environment(parser) == {"TOOL_RATIO": "a share", "OTHER_RATIO": "a share"}
    text = epilog(parser, {Exit.OK: "", Exit.USAGE: "e.g. --ratio 2"}, {"TOOL_TOKENS": "tokens"})
    assert "  TOOL_TOKENS  tokens" in text and "  OTHER_RATIO  a share" in text
    assert f"    2  {MEANINGS[Exit.USAGE]} (e.g. --ratio 2)" in text and "  1  " not in text


def test_a_bad_variable_is_a_usage_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOOL_RATIO", "2")
    with pytest.raises(SystemExit) as ended:
        parser_with("TOOL_RATIO").parse_args(["run"])
    assert ended.value.code == Exit.USAGE
    err = capsys.readouterr().err
    assert err == (
        "tool run: error: argument --ratio: TOOL_RATIO='2': must be between 0 and 1 (or 0% and 100%): '2' "
        "(see tool run --help)\n"
    )


@pytest.mark.parametrize(("text", "value"), [("4m", 4 << 20), ("16k", 16 << 10), ("100", 100), ("2M", 2 << 20)])
def test_sizes(text: str, value: int) -> None:
    assert size(text) == value


@pytest.mark.parametrize("text", ["0", "-1k", "4g", "m", ""])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        size(text)
