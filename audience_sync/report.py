"""What a run tells its operator: located errors, a progress line, the summary.

Errors: the first ``show`` are printed as ``file:line: reason``, all are
counted, and all may be written to a rejects file (the reason, then the line).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO

from audience_sync.records import LineError


class ErrorReport:
    def __init__(self, *, show: int = 20, out: IO[str] | None = None, rejects: IO[bytes] | None = None) -> None:
        self.show = show
        self.out = out if out is not None else sys.stderr
        self.rejects = rejects
        self.count = 0
        self.shown: list[str] = []  # the errors printed, for --json

    def add(self, error: LineError) -> None:
        self.count += 1
        if self.count <= self.show:
            print(error, file=self.out)
            self.shown.append(str(error))
        elif self.count == self.show + 1:
            print("... (further errors counted, not shown)", file=self.out)
        if self.rejects is not None:
            self.rejects.write(f"# {error}\n".encode())
            if error.text:
                self.rejects.write(error.text if error.text.endswith(b"\n") else error.text + b"\n")


def human(n: float) -> str:
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}T"


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """A progress line on stderr: rows, rows/s, and percent and ETA when the input size is known.

    On a terminal it redraws one line; elsewhere (``--progress`` to a log) it
    prints a line every ``every`` seconds.
    """

    def __init__(
        self,
        label: str,
        *,
        total_bytes: int | None = None,
        position: Callable[[], int] | None = None,
        enabled: bool = True,
        out: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total_bytes
        self.position = position
        self.enabled = enabled
        self.out = out if out is not None else sys.stderr
        self.tty = self.out.isatty()
        self.clock = clock
        self.started = clock()
        self.every = 0.25 if self.tty else 5.0
        self._next = self.started + self.every
        self._drawn = False

    def line(self, rows: int, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = rows / elapsed
        text = f"{self.label}: {human(rows)} rows, {human(rate)} rows/s, {duration(elapsed)}"
        if self.total and self.position is not None:
            done = min(self.position() / self.total, 1.0)
            if done > 0:
                text += f", {done:.0%}, ETA {duration(elapsed / done - elapsed)}"
        return text

    def update(self, rows: int) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if now < self._next:
            return
        self._next = now + self.every
        text = self.line(rows, now)
        if self.tty:
            self.out.write("\r\x1b[2K" + text)
            self._drawn = True
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.enabled and self._drawn:
            self.out.write("\r\x1b[2K")
            self.out.flush()
