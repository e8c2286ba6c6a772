"""Waiting in tests: for what a test checks, until it holds, never for a fixed time.

A test on a shared, busy machine cannot know how long anything takes, so it waits for the effect it
is about to check (``await eventually(lambda: server.ready)``) and fails only if that effect has not come
after a generous deadline. The deadline bounds a failure, not a duration: no test asserts how long
something took (benchmarks measure that, as ratios, and the docs report it).

A fixed sleep is left only where time passing is the scenario itself (an outage that lasts a while,
a load that runs meanwhile), and what follows it still waits for the effect it checks.

``freeze`` stops a process (a redis-server, a consumer) and returns once the kernel shows it stopped:
a test can then check what it left, knowing nothing moves until SIGCONT.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

T = TypeVar("T")

# Seconds before a wait gives up: long enough for a machine whose cores are all busy elsewhere.
DEADLINE = 30.0
INTERVAL = 0.01


async def eventually(
    check: Callable[[], T | Awaitable[T]], what: str = "", *, within: float = DEADLINE, interval: float = INTERVAL
) -> T:
    """Until ``check()`` (a function or a coroutine function) returns something true; that value.

    Raises AssertionError naming ``what`` (or the check) if it is still false after ``within`` seconds.
    """
    deadline = time.monotonic() + within
    while True:
        got = check()
        value = cast(T, await got if inspect.isawaitable(got) else got)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {within:g} s: {what or _name(check)} (last: {value!r})")
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], T], what: str = "", *, within: float = DEADLINE, interval: float = INTERVAL
) -> T:
    """``eventually`` for tests without an event loop (threads, subprocesses): blocks while it polls."""
    deadline = time.monotonic() + within
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {within:g} s: {what or _name(check)} (last: {value!r})")
        time.sleep(interval)
    return value


async def freeze(process: subprocess.Popen[Any]) -> None:
    """SIGSTOP, then until the kernel shows the process stopped: from then on it does nothing (SIGCONT resumes it)."""
    process.send_signal(signal.SIGSTOP)
    await eventually(lambda: stopped(process.pid), f"process {process.pid} stopped")


def freeze_sync(process: subprocess.Popen[Any]) -> None:
    """``freeze`` for tests without an event loop."""
    process.send_signal(signal.SIGSTOP)
    eventually_sync(lambda: stopped(process.pid), f"process {process.pid} stopped")


def stopped(pid: int) -> bool:
    """The process is stopped (state T in /proc/PID/stat)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")


def _name(check: Callable[..., object]) -> str:
    return getattr(check, "__qualname__", repr(check))
