"""The console entry points: a Ctrl-C at any moment of a command's start ends it quietly with 130.

Real processes of the installed ``decision`` and ``audience-sync`` scripts, each sent SIGINT at
another moment of its first half second (the moments are the test's input, not a wait): while the
command's modules are imported, while it parses its options, once it runs. Only the interpreter's
own start-up, until the first line of the entry point runs (its ``site`` module, the import of the
entry point's tiny module), is out of reach: there Python ends as it does for any program.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from decision.cli.entry import INTERRUPTED
from inbound_common.cli import Exit

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
FRAME = re.compile(r'File "([^"]*)", line \d+, in (\S+)')
# Where Python itself is when the signal lands before the entry point runs.
INTERPRETER_START = ("<frozen site>", "init_import_site", "init_sys_streams")
MOMENTS = [n * 0.025 for n in range(20)]  # 0 to 0.475 s after the start


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A Redis URL whose peer accepts connections and never answers: a command waits there until the signal."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


def interrupted_at(command: list[str], moment: float) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(moment)  # the moment of the signal: the input of this case
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(command, process.returncode, "", stderr)


def assert_quiet_interruption(result: subprocess.CompletedProcess[str], moment: float) -> None:
    said = result.stderr
    if "Traceback" in said and not any(ran_code_of_ours(path, function) for path, function in FRAME.findall(said)):
        assert any(mark in said for mark in INTERPRETER_START) or "/bin/" in said, said
        return  # Python's own start-up, or the import of the entry point itself: before any code of ours runs
    where = f"SIGINT after {moment:.3f} s: exit {result.returncode}\n{said}"
    assert "Traceback" not in said and "Fatal Python error" not in said, where
    # Before Python installs its handler, SIGINT kills the process (the shell shows 130 too).
    assert result.returncode in (INTERRUPTED, -signal.SIGINT), where
    if result.returncode == INTERRUPTED:
        assert said.strip().endswith("interrupted"), where
        assert len(said.strip().splitlines()) == 1, where


def ran_code_of_ours(path: str, function: str) -> bool:
    """A frame of the project's code once the entry point runs; not the packages' ``__init__`` (docstrings), nor
    the entry module's own import (what it imports before its first function runs: ``os``, ``signal``)."""
    if "/decision/" not in path and "/audience_sync/" not in path:
        return False
    return not path.endswith("/__init__.py") and not (path.endswith("/cli/entry.py") and function == "<module>")


def script(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed beside {sys.executable}")
    return str(path)


def test_the_status_is_the_commands_one() -> None:
    assert INTERRUPTED == Exit.INTERRUPTED == 130


@pytest.mark.parametrize("moment", MOMENTS)
def test_ctrl_c_while_decision_starts_is_quiet(moment: float) -> None:
    result = interrupted_at([script("decision"), "validate", "examples/retail/rules.yaml"], moment)
    if result.returncode == Exit.OK:
        return  # it had finished before the signal
    assert_quiet_interruption(result, moment)


@pytest.mark.parametrize("moment", MOMENTS)
def test_ctrl_c_while_audience_sync_starts_is_quiet(moment: float, silent_redis: str) -> None:
    result = interrupted_at([script("audience-sync"), "status", "--redis-url", silent_redis], moment)
    assert_quiet_interruption(result, moment)
