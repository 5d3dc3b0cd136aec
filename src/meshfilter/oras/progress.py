"""Transfer progress: a one-line bar on a TTY for transfers over 1 MB, nothing otherwise."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

PROGRESS_MIN_BYTES = 1_000_000  # "anything over 1 MB" gets a bar


class Progress(Protocol):
    def start(self, label: str, total: int) -> None: ...
    def advance(self, n: int) -> None: ...
    def set(self, n: int) -> None: ...
    def done(self) -> None: ...


class TtyProgress:
    """``label  [#####.....]  42%  8.4/20.0 MB`` redrawn in place on stderr, at most 10 times a second."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.label = ""
        self.total = 0
        self.sent = 0
        self._last = 0.0

    def start(self, label: str, total: int) -> None:
        self.label, self.total, self.sent, self._last = label, total, 0, 0.0
        self._draw(force=True)

    def advance(self, n: int) -> None:
        self.sent = min(self.total, self.sent + n)
        self._draw()

    def set(self, n: int) -> None:
        """Jump to ``n`` bytes (a resumed or restarted transfer)."""
        self.sent = max(0, min(self.total, n))
        self._draw(force=True)

    def done(self) -> None:
        self.sent = self.total
        self._draw(force=True)
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        frac = self.sent / self.total if self.total else 1.0
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r{self.label:<24.24} [{bar:<30}] {frac * 100:3.0f}% "
                          f"{self.sent / 1e6:.1f}/{self.total / 1e6:.1f} MB")
        self.stream.flush()


class Bar:
    """One transfer's view of a :class:`Progress` (a no-op when there is no progress or it is small)."""

    def __init__(self, progress: Progress | None, label: str, total: int) -> None:
        self._p = progress if progress is not None and total > PROGRESS_MIN_BYTES else None
        if self._p is not None:
            self._p.start(label, total)

    @property
    def active(self) -> bool:
        return self._p is not None

    def advance(self, n: int) -> None:
        if self._p is not None:
            self._p.advance(n)

    def set(self, n: int) -> None:
        if self._p is not None:
            self._p.set(n)

    def done(self) -> None:
        if self._p is not None:
            self._p.done()
            self._p = None


def tty_progress(stream: TextIO | None = None) -> TtyProgress | None:
    """A bar on ``stream`` (stderr by default) when it is a terminal, else None."""
    s = stream or sys.stderr
    try:
        return TtyProgress(s) if s.isatty() else None
    except (AttributeError, ValueError):
        return None
