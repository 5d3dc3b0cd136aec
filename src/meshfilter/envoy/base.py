"""What both Envoy runners share: :class:`RunningEnvoy`, the registry of live instances (stopped at
interpreter exit), the :class:`Backend` protocol, and the start-up wait (admin address, ``/ready``,
bound listener ports) with its one error for an Envoy that exits before it is ready.

The process backend (:mod:`meshfilter.envoy.runner`) and the container backend
(:mod:`meshfilter.envoy.container`) both build on this module; neither imports the other.
"""

from __future__ import annotations

import atexit
import json
import threading
import time
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from meshfilter.envoy.readiness import HttpReadiness
from meshfilter.envoy.validate import refusal_line
from meshfilter.errors import EnvoyError
from meshfilter.util.proc import proc_cpu_seconds, proc_rss_bytes

_LIVE: set[RunningEnvoy] = set()
_LIVE_LOCK = threading.Lock()


class RunningEnvoy(ABC):
    """A started Envoy. Use as a context manager, or call :meth:`stop`."""

    name: str
    admin_url: str
    listener_ports: dict[str, int]
    host: str = "127.0.0.1"

    def url(self, listener: str = "main", path: str = "") -> str:
        try:
            port = self.listener_ports[listener]
        except KeyError:
            raise EnvoyError(f"no listener named {listener!r}", where=self.name,
                             hint=f"listeners: {', '.join(sorted(self.listener_ports)) or 'none'}") from None
        return f"http://{self.host}:{port}{path}"

    @property
    @abstractmethod
    def pid(self) -> int:
        """Envoy's PID as this host sees it."""

    @abstractmethod
    def log_text(self) -> str: ...

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    @abstractmethod
    def alive(self) -> bool: ...

    @abstractmethod
    def _terminate(self) -> None: ...

    def stop(self) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self)
        self._terminate()

    def cpu_seconds(self) -> float:
        """utime+stime of the Envoy process, from /proc (for benchmarks)."""
        return proc_cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return proc_rss_bytes(self.pid)

    def stats(self, filter_: str = "") -> dict[str, int]:
        """Counters and gauges from admin /stats, as a dict."""
        url = f"{self.admin_url}/stats?format=json" + (f"&filter={filter_}" if filter_ else "")
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310
            data = json.load(resp)
        return {s["name"]: s["value"] for s in data.get("stats", []) if "value" in s}

    def __enter__(self) -> RunningEnvoy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def register(inst: RunningEnvoy) -> None:
    """Track ``inst`` so that it is stopped at interpreter exit if nobody stopped it."""
    with _LIVE_LOCK:
        _LIVE.add(inst)


def live() -> list[RunningEnvoy]:
    with _LIVE_LOCK:
        return list(_LIVE)


@atexit.register
def _stop_all() -> None:
    for inst in live():
        try:
            inst.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


@dataclass(frozen=True)
class HotRestart:
    """Envoy's hot restart: the Envoy of ``epoch`` N+1 takes over the listen sockets of the running
    epoch N (same ``base_id``), which then drains for ``drain_time_s`` and exits. No connection is
    refused meanwhile: the sockets themselves are handed over.

    ``directory`` is shared by every epoch (and mounted into every container): it holds the hot-restart
    domain sockets and, at epoch 0, the base id Envoy picked (``base_id`` None)."""

    directory: Path
    epoch: int = 0
    base_id: int | None = None
    drain_time_s: int = 2
    parent_shutdown_time_s: int = 4

    @property
    def base_id_path(self) -> Path:
        return self.directory / "base-id"

    def flags(self) -> list[str]:
        out = ["--restart-epoch", str(self.epoch), "--drain-time-s", str(self.drain_time_s),
               "--parent-shutdown-time-s", str(self.parent_shutdown_time_s),
               "--socket-path", str(self.directory / "hot-restart")]
        if self.base_id is None:
            return [*out, "--use-dynamic-base-id", "--base-id-path", str(self.base_id_path)]
        return [*out, "--base-id", str(self.base_id)]

    def read_base_id(self) -> int:
        """The base id epoch 0 wrote (``base_id`` given: that one)."""
        if self.base_id is not None:
            return self.base_id
        return int(self.base_id_path.read_text().strip())


class Backend(Protocol):
    """What :func:`meshfilter.envoy.get_backend` returns: the process and the container backend.

    ``files``: host paths the bootstrap needs besides those it names (the container mounts them);
    ``workdir``: where the bootstrap and log go (process backend; the container uses a fresh one);
    ``cpu``: pin Envoy to this CPU (benchmarks); ``hot_restart``: take over from a running Envoy
    (see :class:`HotRestart`; None: hot restart off)."""

    name: str

    def start(self, bootstrap: Mapping[str, Any], *, name: str = "envoy", concurrency: int = 1,
              log_level: str = "info", timeout: float = 30.0, files: tuple[Path, ...] = (),
              workdir: Path | None = None, cpu: int | None = None,
              hot_restart: HotRestart | None = None) -> RunningEnvoy: ...


def listener_ports_from_admin(admin_url: str) -> dict[str, int]:
    """``{listener name: bound port}`` from admin ``/listeners`` (ports given as 0 are bound by then)."""
    with urllib.request.urlopen(f"{admin_url}/listeners?format=json", timeout=5) as resp:  # noqa: S310
        data = json.load(resp)
    ports: dict[str, int] = {}
    for st in data.get("listener_statuses", []):
        addr = st.get("local_address", {}).get("socket_address", {})
        if "port_value" in addr:
            ports[st["name"]] = int(addr["port_value"])
    return ports


def wait_admin_address(path: Path, *, alive: Callable[[], bool], deadline: float,
                       interval: float = 0.02) -> str:
    """The admin URL Envoy writes to ``--admin-address-path`` (``0.0.0.0`` read as loopback); waits
    until it is written, Envoy exits, or ``deadline`` (monotonic) passes."""
    while not path.exists() or not path.read_text().strip():
        if not alive() or time.monotonic() > deadline:
            break
        time.sleep(interval)
    admin = path.read_text().strip() if path.exists() else ""
    if admin.startswith("0.0.0.0:"):
        admin = "127.0.0.1:" + admin.split(":", 1)[1]
    return f"http://{admin}" if admin else "http://(admin not bound)"


def wait_until_ready(inst: RunningEnvoy, admin_address_path: Path, *, timeout: float, what: str,
                     interval: float = 0.05) -> None:
    """Fill ``inst.admin_url`` and ``inst.listener_ports`` once Envoy answers ``/ready``.

    An Envoy that exits first raises :func:`exited_error` (Envoy's own refusal, the log attached)."""
    deadline = time.monotonic() + timeout
    inst.admin_url = wait_admin_address(admin_address_path, alive=inst.alive, deadline=deadline,
                                        interval=min(interval, 0.05))
    try:
        HttpReadiness(f"{inst.admin_url}/ready", timeout=max(1.0, deadline - time.monotonic()),
                      interval=interval, what=what).wait(alive=inst.alive, log_tail=inst.log_tail)
    except EnvoyError:
        if not inst.alive():
            raise exited_error(what, inst.log_text(), where=inst.admin_url) from None
        raise
    inst.listener_ports = listener_ports_from_admin(inst.admin_url)


def exited_error(what: str, log: str, *, where: str) -> EnvoyError:
    """The error for an Envoy (``what``, e.g. ``envoy 'x'``) that exited before it was ready: Envoy's
    own refusal line (a Wasm module's own log line first), the last 300 log lines attached."""
    return EnvoyError(f"{what} exited before it was ready: {refusal_line(log)}", where=where,
                      hint="fix the filter or its configuration; 'meshfilter envoy validate' checks a bootstrap",
                      log_tail="\n".join(log.splitlines()[-300:]))
