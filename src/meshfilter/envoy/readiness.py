"""Readiness as an object: poll an HTTP endpoint until it answers 200, or raise with context."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from meshfilter.errors import EnvoyError


@dataclass
class HttpReadiness:
    """Wait until ``url`` answers 200. On timeout, or when ``alive()`` turns false, raise an
    :class:`EnvoyError` naming the address, with the last log lines and a hint."""

    url: str
    timeout: float = 30.0
    interval: float = 0.05
    what: str = "envoy"

    def wait(self, *, alive: Callable[[], bool], log_tail: Callable[[], str]) -> None:
        deadline = time.monotonic() + self.timeout
        last_error = ""
        while time.monotonic() < deadline:
            if not alive():
                tail = log_tail()
                raise EnvoyError(
                    f"{self.what} exited before it was ready; last log line: {_last_line(tail)}",
                    where=self.url, hint="see the log tail above; run 'meshfilter envoy validate' on the "
                    "bootstrap", log_tail=tail)
            try:
                with urllib.request.urlopen(self.url, timeout=2) as resp:  # noqa: S310 (loopback)
                    if resp.status == 200:
                        return
                    last_error = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}"
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                last_error = str(getattr(exc, "reason", exc))
            time.sleep(self.interval)
        tail = log_tail()
        raise EnvoyError(
            f"{self.what} was not ready after {self.timeout:.0f}s (last answer: {last_error or 'none'})",
            where=self.url, hint="raise the timeout, or read the log tail for the cause", log_tail=tail)


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    # Prefer Envoy's own critical/error line when there is one.
    for ln in reversed(lines):
        if "[critical]" in ln or "[error]" in ln:
            return ln.strip()
    return lines[-1].strip() if lines else "(empty log)"
