"""Watching files for changes by polling (no inotify dependency; works on any filesystem, bind mounts
and editors that replace a file by renaming a new one over it)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

Signature = tuple[int, int, int, str] | None  # (mtime_ns, size, inode, content digest), None: missing
_HASH_LIMIT = 64 << 20  # files up to 64 MiB are also compared by content (same size and mtime tick)


def signature(path: Path) -> Signature:
    try:
        st = os.stat(path)
        digest = hashlib.blake2b(path.read_bytes()).hexdigest() if st.st_size <= _HASH_LIMIT else ""
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, digest)


class FileWatcher:
    """``paths()`` names the files to watch (called on every poll, so new files under a folder count);
    :meth:`wait_for_change` returns the files that changed, once they have stopped changing."""

    def __init__(self, paths: Callable[[], Sequence[Path]], *, interval: float = 0.2,
                 settle: float = 0.3) -> None:
        self._paths = paths
        self.interval = interval
        self.settle = settle
        self._seen = self._snapshot()

    @property
    def paths(self) -> list[Path]:
        return list(self._seen)

    def _snapshot(self) -> dict[Path, Signature]:
        return {p: signature(p) for p in self._paths()}

    def _diff(self, now: dict[Path, Signature]) -> list[Path]:
        return [p for p in {**self._seen, **now} if self._seen.get(p) != now.get(p)]

    def wait_for_change(self, timeout: float) -> list[Path]:
        """Poll for up to ``timeout`` seconds; [] when nothing changed. A change is reported after the
        files have kept still for ``settle`` seconds (an editor writing in several steps, a build)."""
        deadline = time.monotonic() + timeout
        while True:
            now = self._snapshot()
            changed = self._diff(now)
            if changed:
                break
            if time.monotonic() >= deadline:
                return []
            time.sleep(self.interval)
        still_since = time.monotonic()
        give_up = still_since + 10 * self.settle
        while time.monotonic() - still_since < self.settle and time.monotonic() < give_up:
            time.sleep(min(self.interval, self.settle))
            later = self._snapshot()
            if later != now:
                now, still_since = later, time.monotonic()
        changed = [p for p in {**self._seen, **now} if self._seen.get(p) != now.get(p)]
        self._seen = now
        return sorted(changed)
