"""Load every core with busy processes, to check that the test suite does not depend on an idle machine.

    python scripts/busy.py run -- ./dev test -q     # the load for the command's duration, then stopped
    python scripts/busy.py start [--processes N]    # in the background (default: one per core)
    python scripts/busy.py status
    python scripts/busy.py stop

Each busy process hashes in a loop at normal priority. ``run`` stops them however the command ends
(an interrupt included), and they stop on their own if the process that started them is gone;
``start`` records their ids in a file under the temporary directory (one per checkout), ``stop`` ends
those and only those (each is checked to be one of ours first).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "busy.py spin"  # in every busy process's command line: what ``stop`` checks before ending one


def pid_file() -> Path:
    checkout = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"busy-{os.getuid()}-{checkout}.pids"


def spin(watched: int) -> None:
    """Hash until killed, or until ``watched`` (its parent, when not 0) is gone."""
    block = os.urandom(4096)
    while True:
        for _ in range(20_000):  # about a tenth of a second of hashing between checks
            block = hashlib.sha256(block).digest() * 128
        if watched and os.getppid() != watched:  # orphaned: the parent died without ending us
            return


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ours(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return MARK in command


def launch(count: int, *, watched: int) -> list[subprocess.Popen[bytes]]:
    command = [sys.executable, str(Path(__file__).resolve()), "spin", "--watch", str(watched)]
    return [subprocess.Popen(command, start_new_session=True) for _ in range(count)]


def end(pids: list[int]) -> None:
    for pid in pids:
        if _ours(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(_alive(pid) and _ours(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


@contextlib.contextmanager
def loaded(count: int) -> Iterator[list[int]]:
    """Busy processes for the duration of the block, ended however it ends."""
    processes = launch(count, watched=os.getpid())
    try:
        yield [p.pid for p in processes]
    finally:
        end([p.pid for p in processes])
        for process in processes:
            process.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def running() -> list[int]:
    path = pid_file()
    if not path.exists():
        return []
    return [pid for pid in (int(word) for word in path.read_text().split()) if _alive(pid) and _ours(pid)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/busy.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "run"):
        command = commands.add_parser(name)
        command.add_argument("--processes", type=int, default=os.cpu_count() or 2, help="default: one per core")
    commands.add_parser("stop")
    commands.add_parser("status")
    spinning = commands.add_parser("spin", help=argparse.SUPPRESS)
    spinning.add_argument("--watch", type=int, default=0)
    args, rest = parser.parse_known_args(argv)

    if args.command == "spin":
        with contextlib.suppress(KeyboardInterrupt):
            spin(args.watch)
        return 0
    if args.command == "run":
        if rest[:1] == ["--"]:
            rest = rest[1:]
        if not rest:
            parser.error("run: a command to run is required: busy.py run -- CMD ...")
        # SIGTERM ends the command and the load like an interrupt does.
        signal.signal(signal.SIGTERM, _interrupt)
        with loaded(args.processes) as pids:
            print(f"busy: {len(pids)} busy processes ({' '.join(map(str, pids))}) while running: {' '.join(rest)}")
            sys.stdout.flush()
            try:
                return subprocess.run(rest, check=False).returncode
            except KeyboardInterrupt:
                return 130
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "start":
        if already := running():
            print(f"busy: already running: {' '.join(map(str, already))}")
            return 0
        pids = [p.pid for p in launch(args.processes, watched=0)]
        pid_file().write_text(" ".join(map(str, pids)) + "\n")
        print(f"busy: started {len(pids)} busy processes: {' '.join(map(str, pids))} (stop: scripts/busy.py stop)")
        return 0
    if args.command == "stop":
        pids = running()
        end(pids)
        pid_file().unlink(missing_ok=True)
        print(f"busy: stopped {len(pids)} busy processes" if pids else "busy: none running")
        return 0
    pids = running()
    print(f"busy: {len(pids)} busy processes running: {' '.join(map(str, pids))}" if pids else "busy: none running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
