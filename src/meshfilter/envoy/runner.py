"""Envoy runners. The process backend lives here; the container backend in ``container.py``.

Both return a :class:`RunningEnvoy`: the admin URL, the bound listener ports, the log, and
``stop()``. Processes are ended by PID (SIGTERM, then SIGKILL), also at interpreter exit.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from meshfilter.envoy.binary import find_envoy
from meshfilter.envoy.readiness import HttpReadiness
from meshfilter.errors import EnvoyError, UsageError
from meshfilter.util.proc import stop_process

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


def _register(inst: RunningEnvoy) -> None:
    with _LIVE_LOCK:
        _LIVE.add(inst)


@atexit.register
def _stop_all() -> None:
    for inst in list(_LIVE):
        try:
            inst.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class Backend(Protocol):
    name: str

    def start(self, bootstrap: Mapping[str, Any], *, name: str = "envoy", concurrency: int = 1,
              log_level: str = "info", timeout: float = 30.0,
              files: tuple[Path, ...] = ()) -> RunningEnvoy: ...


def proc_cpu_seconds(pid: int) -> float:
    """utime+stime of a process, in seconds, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/PID/status (0 when not reported)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def listener_ports_from_admin(admin_url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{admin_url}/listeners?format=json", timeout=5) as resp:  # noqa: S310
        data = json.load(resp)
    ports: dict[str, int] = {}
    for st in data.get("listener_statuses", []):
        addr = st.get("local_address", {}).get("socket_address", {})
        if "port_value" in addr:
            ports[st["name"]] = int(addr["port_value"])
    return ports


class EnvoyProcess(RunningEnvoy):
    def __init__(self, name: str, proc: subprocess.Popen[bytes], workdir: Path, log_path: Path,
                 owns_workdir: tempfile.TemporaryDirectory[str] | None) -> None:
        self.name = name
        self.proc = proc
        self.pid = proc.pid
        self.workdir = workdir
        self.log_path = log_path
        self._tmp = owns_workdir
        self.admin_url = ""
        self.listener_ports = {}

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """utime+stime of the Envoy process, from /proc (for benchmarks)."""
        return proc_cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return proc_rss_bytes(self.pid)

    def _terminate(self) -> None:
        stop_process(self.proc, timeout=10)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class ProcessBackend:
    """Run Envoy as a child process of this interpreter."""

    name = "process"

    def __init__(self, binary: str | os.PathLike[str] | None = None) -> None:
        self.binary = find_envoy(binary)

    def command(self, config_path: Path, *, concurrency: int, log_level: str,
                admin_path: Path | None = None, mode: str = "serve") -> list[str]:
        cmd = [str(self.binary), "-c", str(config_path), "--concurrency", str(concurrency),
               "-l", log_level, "--use-dynamic-base-id", "--disable-hot-restart", "--mode", mode]
        if admin_path is not None:
            cmd += ["--admin-address-path", str(admin_path)]
        return cmd

    def start(self, bootstrap: Mapping[str, Any], *, name: str = "envoy", concurrency: int = 1,
              log_level: str = "info", timeout: float = 30.0, files: tuple[Path, ...] = (),
              workdir: Path | None = None, cpu: int | None = None) -> EnvoyProcess:
        del files  # the process sees the host filesystem as it is
        tmp = None
        if workdir is None:
            tmp = tempfile.TemporaryDirectory(prefix=f"meshfilter-{name}-")
            workdir = Path(tmp.name)
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "envoy.json"
        config_path.write_text(json.dumps(bootstrap, indent=1))
        admin_path = workdir / "admin-address"
        log_path = workdir / "envoy.log"
        cmd = self.command(config_path, concurrency=concurrency, log_level=log_level, admin_path=admin_path)
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=workdir, start_new_session=True)
        inst = EnvoyProcess(name, proc, workdir, log_path, tmp)
        _register(inst)
        try:
            deadline = time.monotonic() + timeout
            while not admin_path.exists() or not admin_path.read_text().strip():
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            admin = admin_path.read_text().strip() if admin_path.exists() else ""
            inst.admin_url = f"http://{admin}" if admin else "http://(admin not bound)"
            HttpReadiness(f"{inst.admin_url}/ready", timeout=max(1.0, deadline - time.monotonic()),
                          what=f"envoy '{name}'").wait(alive=inst.alive, log_tail=inst.log_tail)
            inst.listener_ports = listener_ports_from_admin(inst.admin_url)
        except BaseException:
            inst.stop()
            raise
        return inst


def get_backend(name: str = "process", **kwargs: Any) -> Backend:
    if name == "process":
        return ProcessBackend(**kwargs)
    if name == "container":
        from meshfilter.envoy.container import ContainerBackend

        return ContainerBackend(**kwargs)
    raise UsageError(f"unknown Envoy backend {name!r}", where="--backend", hint="use process or container")


def start_envoy(bootstrap: Mapping[str, Any], *, backend: str | Backend = "process",
                **kwargs: Any) -> RunningEnvoy:
    """Start Envoy on ``bootstrap`` with the named backend and wait until it is ready."""
    be = get_backend(backend) if isinstance(backend, str) else backend
    return be.start(bootstrap, **kwargs)
