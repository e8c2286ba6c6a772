"""The console entry points, ``decision`` and ``audience-sync``: a Ctrl-C ends them quietly from their first line.

A command handles Ctrl-C itself (``Exit.INTERRUPTED``, 130) once it runs; before that, while its
modules are imported (a few hundred milliseconds), a KeyboardInterrupt would end in a traceback,
or worse, in a crash inside a C extension's initialization. Here, a Ctrl-C during those imports ends
the process at once, quietly, with 130. This module imports nothing of the project before that is in
place, so only the interpreter's own start-up (before the first line here runs) is out of reach:
Python then prints what it prints for any program.
"""

from __future__ import annotations

import os
import signal
import sys

TYPE_CHECKING = False  # not typing's: importing it (or collections) here would widen the window this closes
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

# 128 + SIGINT, as a shell reports a program Ctrl-C ended (decision.cli.options.Exit.INTERRUPTED).
INTERRUPTED = 128 + signal.SIGINT


def _run(name: str, load: Callable[[], Callable[[], int]]) -> int:
    def leave(signum: int, frame: FrameType | None) -> None:
        # Nothing is open yet: end now. Not by raising KeyboardInterrupt: raised while a C extension
        # initializes (orjson, grpc...) it can crash the interpreter (SIGSEGV) instead of unwinding.
        os.write(sys.stderr.fileno(), f"{name}: interrupted\n".encode())
        os._exit(INTERRUPTED)

    signal.signal(signal.SIGINT, leave)
    main = load()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on, the command handles Ctrl-C
    try:
        return main()
    except KeyboardInterrupt:  # outside the command's own handling (audience-sync parses its options first)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C now cannot interrupt the last words
        print(f"{name}: interrupted", file=sys.stderr)
        return INTERRUPTED


def _decision() -> Callable[[], int]:
    from decision.cli.main import main

    return main


def _audience_sync() -> Callable[[], int]:
    from audience_sync.cli.main import main

    return main


def decision() -> int:
    """``decision``."""
    return _run("decision", _decision)


def audience_sync() -> int:
    """``audience-sync``."""
    return _run("audience-sync", _audience_sync)
