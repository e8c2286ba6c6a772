"""The conventions of the `decision` and `audience-sync` commands, as a user meets them: one line and a documented exit
status, no traceback; every option's help names its default and variable."""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from audience_sync.cli.main import build_parser as audience_sync_parser
from audience_sync.cli.main import main as audience_sync
from decision.cli.main import build_parser, main
from decision.store.embedded import free_port
from inbound_common.cli import Exit, environment, subparsers
from tests.waiting import DEADLINE

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "retail"
RULES = EXAMPLE / "rules.yaml"
DECIDE = [sys.executable, "-m", "decision.cli", "decide", "--profile", "p", "--channel", "web", "--placement", "home"]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "decision.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def one_line_error(result: subprocess.CompletedProcess[str], status: Exit, *fragments: str) -> str:
    """The command failed with ``status``, and said why on its last line of stderr, with no traceback."""
    assert result.returncode == status, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    for fragment in fragments:
        assert fragment in last, last
    return last


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on (no SO_REUSEPORT, so the server cannot share it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_busy_port_is_one_line_and_unavailable(busy_port: int, redis_url: str, workers: str) -> None:
    result = run(
        *("serve", "--rules", str(RULES), "--host", "127.0.0.1", "--port", str(busy_port), "--redis-url", redis_url),
        *("--workers", workers),
    )
    one_line_error(result, Exit.UNAVAILABLE, "decision serve:", f"127.0.0.1:{busy_port}", "in use")
    assert len(result.stderr.splitlines()) == 1, result.stderr  # nothing before it (grpc's add_port.cc line)


# Every command that takes --redis-url, with what else it needs to start.
REDIS_COMMANDS = {
    "serve": ("serve",),
    "validate": ("validate", str(RULES)),
    "rules publish": ("rules", "publish", str(RULES)),
    "rules rollback": ("rules", "rollback"),
    "rules list": ("rules", "list"),
    "rules diff": ("rules", "diff", str(RULES), "retail-2026.10"),
    "simulate": ("simulate", str(RULES), "--from-redis", "10", "--chart", ""),
    "report": ("report", "--from", "2026-11-01"),
    "profile": ("profile", "p-1001"),
    "console": ("console",),
}
# audience-sync's: every one of them.
SYNC_COMMANDS = {
    "load": ("load", str(RULES)),
    "apply": ("apply", str(RULES)),
    "attributes": ("attributes", str(RULES), "--attribute", "tier"),
    "stream": ("stream", "--drain"),
    "receive": ("receive", "--no-auth", "--port", "0"),
    "watch": ("watch", str(EXAMPLE), "--snapshot", "*", "--port", "0"),
    "status": ("status",),
    "gc": ("gc",),
}
COMMANDS = {"decision": (main, build_parser, REDIS_COMMANDS), "audience-sync": (audience_sync, audience_sync_parser,
            SYNC_COMMANDS)}  # fmt: skip
EVERY_REDIS_COMMAND = [(program, command) for program, (_, _, listed) in COMMANDS.items() for command in listed]


@pytest.mark.parametrize("program", sorted(COMMANDS))
def test_the_list_of_commands_taking_a_redis_url_is_complete(program: str) -> None:
    _, parser, listed = COMMANDS[program]
    taking = {
        sub.prog.removeprefix(f"{program} ")
        for sub in subparsers(parser())
        if any("--redis-url" in action.option_strings for action in sub._actions)
    }
    assert taking == set(listed)


@pytest.mark.parametrize("url", ["http://x", "redis://127.0.0.1:notaport/0", "redis://127.0.0.1:6379/zero"])
@pytest.mark.parametrize(("program", "command"), EVERY_REDIS_COMMAND)
def test_a_malformed_redis_url_is_one_line_and_a_usage_error(
    program: str, command: str, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_main, _, listed = COMMANDS[program]
    with pytest.raises(SystemExit) as ended:
        run_main([*listed[command], "--redis-url", url])
    assert ended.value.code == Exit.USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"{program} {command}: error: argument --redis-url: not a Redis URL: "), err
    assert len(err.splitlines()) == 1, err


@pytest.mark.parametrize(("program", "command"), [("decision", "rules list"), ("decision", "validate"),
                                                  ("audience-sync", "status"), ("audience-sync", "load")])  # fmt: skip
def test_a_bad_key_prefix_is_one_line_and_a_usage_error(
    program: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_main, _, listed = COMMANDS[program]
    with pytest.raises(SystemExit) as ended:
        run_main([*listed[command], "--redis-url", "redis://127.0.0.1:1/0", "--key-prefix", "a:b"])
    assert ended.value.code == Exit.USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"{program} {command}: error: argument --key-prefix: invalid key prefix 'a:b'"), err
    assert len(err.splitlines()) == 1, err


def test_audience_sync_reads_its_own_redis_url_variable_first_then_the_decision_services(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUDIENCE_SYNC_REDIS_URL", raising=False)
    monkeypatch.delenv("DECISION_REDIS_URL", raising=False)
    assert audience_sync(["status"]) == Exit.USAGE
    assert capsys.readouterr().err == (
        "audience-sync status: no Redis: pass --redis-url or set AUDIENCE_SYNC_REDIS_URL (or DECISION_REDIS_URL)\n"
    )
    monkeypatch.setenv("DECISION_REDIS_URL", "redis://:s3cret@127.0.0.1:notaport/0")
    with pytest.raises(SystemExit):
        audience_sync(["status"])
    err = capsys.readouterr().err
    assert err.startswith("audience-sync status: error: argument --redis-url: DECISION_REDIS_URL="), err
    assert "s3cret" not in err and "'notaport' is not a number" in err
    monkeypatch.setenv("AUDIENCE_SYNC_REDIS_URL", "redis://127.0.0.1:1/0")  # the first one set wins
    assert audience_sync_parser().parse_args(["status"]).redis_url == "redis://127.0.0.1:1/0"


def test_a_malformed_redis_url_in_the_environment_is_named_and_its_password_hidden() -> None:
    for command in ("serve", "report"):
        result = run(*REDIS_COMMANDS[command], env={"DECISION_REDIS_URL": "redis://:s3cret@127.0.0.1:notaport/0"})
        last = one_line_error(result, Exit.USAGE, f"decision {command}: error:", "DECISION_REDIS_URL", "'notaport'")
        assert "s3cret" not in result.stderr, last
        assert len(result.stderr.splitlines()) == 1, result.stderr


def test_a_well_formed_url_of_no_redis_is_unavailable_not_a_usage_error() -> None:
    for url in (f"redis://127.0.0.1:{free_port()}/0", f"redis+cluster://127.0.0.1:{free_port()}"):
        one_line_error(run("rules", "list", "--redis-url", url), Exit.UNAVAILABLE, "Redis:")


@pytest.mark.parametrize(
    ("name", "value"),
    [("DECISION_PORT", "abc"), ("DECISION_WORKERS", "0"), ("DECISION_DRAIN", "-1"), ("DECISION_LOG_FORMAT", "xml")],
)
def test_a_bad_environment_variable_is_a_usage_error_naming_it(name: str, value: str) -> None:
    result = run("serve", "--rules", str(RULES), env={name: value})
    last = one_line_error(result, Exit.USAGE, "decision serve: error:")
    assert name in last or value in last


@pytest.mark.parametrize("value", ["fast", "0", "-5"])
def test_a_bad_timeout_in_milliseconds_names_its_variable_and_its_unit(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DECISION_REDIS_TIMEOUT_MS", value)
    with pytest.raises(SystemExit) as ended:
        main(["serve", "--rules", str(RULES)])
    assert ended.value.code == Exit.USAGE
    err = capsys.readouterr().err
    assert f"DECISION_REDIS_TIMEOUT_MS={value!r}" in err, err
    assert "milliseconds" in err or " ms" in err, err
    assert " of seconds" not in err and "more seconds" not in err, err


def test_a_variable_a_command_does_not_read_is_ignored() -> None:
    result = run("validate", str(RULES), env={"DECISION_PORT": "abc"})
    assert result.returncode == Exit.OK, result.stderr


def test_the_command_line_wins_over_the_environment() -> None:
    args = build_parser().parse_args(["decide", "--profile", "p", "--channel", "web", "--placement", "h"])
    assert args.target == "localhost:50051"
    os.environ["DECISION_TARGET"] = "elsewhere:1"
    try:
        assert build_parser().parse_args(["decide", "--profile", "p", "--channel", "w", "--placement", "h"]).target == (
            "elsewhere:1"
        )
        given = ["decide", "--target", "here:2", "--profile", "p", "--channel", "w", "--placement", "h"]
        assert build_parser().parse_args(given).target == "here:2"
    finally:
        del os.environ["DECISION_TARGET"]


def test_a_closed_pipe_is_quiet_with_status_141(tmp_path: Path) -> None:
    # Far more output than a pipe holds: the write fails once the reader is gone.
    offers = "\n".join(f"  - {{id: o{i}, placements: [home], colour: red}}" for i in range(3000))
    rules = tmp_path / "big.yaml"
    rules.write_text(f"version: v1\nplacements: [{{id: home, channels: [web], fallback: o0}}]\noffers:\n{offers}\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "decision.cli", "validate", "--json", str(rules)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().strip() == b"["  # like `| head -1`: read a little, then close
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == Exit.CLOSED_PIPE
    assert stderr == ""


def test_a_missing_file_is_one_line_and_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = run("validate", str(missing))
    assert result.returncode == Exit.INVALID
    assert result.stdout == f"{missing}:0: file: cannot read: No such file or directory\n"
    assert "Traceback" not in result.stderr
    result = run("simulate", str(RULES), "--profiles", str(missing), "--chart", "")
    one_line_error(result, Exit.INVALID, "decision simulate:", "nope.yaml")
    result = run("serve", "--rules", str(RULES), "--load-audiences", str(missing), "--redis-url", "redis://127.0.0.1:1")
    one_line_error(result, Exit.INVALID, "decision serve: --load-audiences", "cannot read")


def test_an_unreachable_redis_is_one_line_and_unavailable() -> None:
    url = f"redis://127.0.0.1:{free_port()}"
    one_line_error(run("rules", "list", "--redis-url", url), Exit.UNAVAILABLE, "decision rules list: Redis:")
    one_line_error(run("rules", "publish", str(RULES), "--redis-url", url), Exit.UNAVAILABLE, "Redis:")
    one_line_error(run("serve", "--redis-url", url), Exit.UNAVAILABLE, "decision serve: Redis:")


def test_an_unreachable_server_is_one_line_and_unavailable() -> None:
    target = f"127.0.0.1:{free_port()}"
    result = run("decide", "--target", target, "--profile", "p", "--channel", "web", "--placement", "home_banner")
    one_line_error(result, Exit.UNAVAILABLE, "decision decide: UNAVAILABLE", target)


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HTTP2_SETTINGS, HTTP2_HEADERS = 0x4, 0x1


def read_until_call(connection: socket.socket) -> None:
    """Play an HTTP/2 server that never answers: SETTINGS (the connection is ready), then read the
    client's frames until the HEADERS that start its call."""
    connection.settimeout(DEADLINE)
    connection.sendall(bytes([0, 0, 0, HTTP2_SETTINGS, 0, 0, 0, 0, 0]))  # empty SETTINGS on stream 0

    def exactly(size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = connection.recv(size - len(data))
            assert chunk, "the client closed the connection"
            data += chunk
        return data

    assert exactly(len(HTTP2_PREFACE)) == HTTP2_PREFACE
    while True:
        header = exactly(9)  # length (3 bytes), type, flags, stream id (4 bytes)
        exactly(int.from_bytes(header[:3], "big"))
        if header[3] == HTTP2_HEADERS:
            return


def from_a_terminal(command: list[str]) -> list[str]:
    """``command`` started with SIGINT at its default, as a terminal starts it. A job started in the
    background without job control (``cmd &`` in a script, as CI runs the suite) inherits SIGINT ignored,
    and Python then leaves it ignored: Ctrl-C could not reach it."""
    reset = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    return [sys.executable, "-c", reset, *command]


def test_ctrl_c_is_one_line_and_130() -> None:
    # A peer that takes the call and never answers: the call waits until the signal.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        target = f"127.0.0.1:{listener.getsockname()[1]}"
        process = subprocess.Popen(
            from_a_terminal([*DECIDE, "--target", target, "--deadline-ms", "60000"]),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        connection, _ = listener.accept()
        with connection:
            read_until_call(connection)  # the client is inside its call now, waiting for the answer
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=DEADLINE)
    assert process.returncode == Exit.INTERRUPTED, stderr
    assert stderr.strip() == "decision: interrupted"


def test_publishing_a_version_name_again_with_other_content_is_a_conflict(redis_url: str, tmp_path: Path) -> None:
    prefix = f"conflict{os.getpid()}"
    first = run("rules", "publish", str(RULES), "--redis-url", redis_url, "--key-prefix", prefix, "--json")
    assert first.returncode == Exit.OK, first.stderr
    body = orjson.loads(first.stdout)
    assert body["version"] == "retail-2026.11" and body["changed"] is True
    changed = tmp_path / "rules.yaml"
    changed.write_text(RULES.read_text() + "\n# another content, the same version name\n")
    again = run("rules", "publish", str(changed), "--redis-url", redis_url, "--key-prefix", prefix)
    one_line_error(again, Exit.CONFLICT, "decision rules publish: refused:", "already published with other content")
    listing = run("rules", "list", "--redis-url", redis_url, "--key-prefix", prefix, "--json")
    assert [v["version"] for v in orjson.loads(listing.stdout)["versions"]] == ["retail-2026.11"]


def test_validate_json_lists_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: v1\nplacements: [{id: home, channels: [web]}]\noffers: [{id: a, placements: [home]}]\n")
    result = run("validate", "--json", str(RULES), str(bad))
    assert result.returncode == Exit.INVALID
    good, wrong = orjson.loads(result.stdout)
    assert good["ok"] and good["version"] == "retail-2026.11" and good["offers"] == 15
    assert not wrong["ok"]
    assert [(p["line"], p["field"], p["severity"]) for p in wrong["problems"]] == [
        (2, "placements[0].fallback", "error")
    ]


def test_version() -> None:
    result = run("--version")
    assert result.returncode == Exit.OK
    assert result.stdout.startswith("decision ")


@pytest.mark.parametrize("program", sorted(COMMANDS))
def test_every_option_says_what_it_does_its_default_and_its_variable(program: str) -> None:
    parser = COMMANDS[program][1]()
    for sub in subparsers(parser):
        for action in sub._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            where = f"{sub.prog} {action.option_strings[0]}"
            assert action.help, f"{where} has no help"
            if action.default not in (None, False, [], argparse.SUPPRESS):
                assert f"default: {action.default}" in action.help, where
            for name in getattr(action, "env", ()):  # set by option(): every option is added through it
                assert name in action.help, where
            assert hasattr(action, "env"), f"{where}: add it with inbound_common.cli.option()"
    listed = parser.epilog or ""
    for name in environment(parser):
        assert name in listed
    codes = set(Exit) - ({Exit.NOT_FOUND} if program == "audience-sync" else set())
    for code in codes:
        assert f"{int(code):>3}  " in listed


@pytest.mark.parametrize(
    ("prefix", "parser", "docs"),
    [
        ("DECISION_", build_parser, ["operations.md"]),
        ("AUDIENCE_SYNC_", audience_sync_parser, ["audience-sync.md", "receive.md", "watch.md"]),
    ],
)
def test_every_variable_the_code_reads_is_listed_in_help_and_docs(
    prefix: str, parser: Callable[[], argparse.ArgumentParser], docs: list[str]
) -> None:
    root = Path(__file__).resolve().parents[3]
    sources = [p for package in ("decision", "audience_sync", "inbound_common") for p in (root / package).rglob("*.py")]
    pattern = re.escape(prefix) + "[A-Z_]*[A-Z]"
    named = {m for path in sources for m in re.findall(pattern, path.read_text(encoding="utf-8"))}
    # The container health check's own variables are documented in decision/cli/healthcheck.py.
    named = {n for n in named if not n.startswith("DECISION_HEALTH_")}
    listed = parser().epilog or ""
    documented = "".join((root / "docs" / name).read_text(encoding="utf-8") for name in docs)
    assert sorted(n for n in named if n not in listed) == [], "add an option with env=, or to the command's VARIABLES"
    assert sorted(n for n in named if f"`{n}`" not in documented) == [], f"list them in docs/{docs[0]}"


def test_the_bearer_token_is_auth_token_everywhere_and_decide_keeps_its_old_name() -> None:
    parser = build_parser()
    request = ["--profile", "p", "--channel", "web", "--placement", "b"]
    assert parser.parse_args(["decide", *request, "--auth-token", "t1"]).auth_token == "t1"
    assert parser.parse_args(["decide", *request, "--token", "t2"]).auth_token == "t2"
    events = parser.parse_args(["events", "--profile", "p", "--type", "click", "--token", "tt", "--auth-token", "t3"])
    assert (events.tracking_token, events.auth_token) == ("tt", "t3")
