"""The process backend: Envoy as a child process of this interpreter.

Like the container backend (``container.py``) it returns a :class:`~meshfilter.envoy.base.RunningEnvoy`:
the admin URL, the bound listener ports, the log, and ``stop()``. The child dies with this process,
even when it is killed by SIGKILL (:func:`meshfilter.util.proc.spawn`); otherwise it is ended by PID
(SIGTERM, then SIGKILL) on ``stop()`` and at interpreter exit. Its temp directory is removed on
``stop()``, or by the next run when this one was killed.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meshfilter.envoy.base import (
    Backend,
    HotRestart,
    RunningEnvoy,
    listener_ports_from_admin,
    register,
    wait_until_ready,
)
from meshfilter.envoy.binary import find_envoy
from meshfilter.errors import UsageError
from meshfilter.util.fs import OwnedTempDir
from meshfilter.util.proc import proc_cpu_seconds, proc_rss_bytes, spawn, stop_process

__all__ = [
    "Backend",
    "HotRestart",
    "EnvoyProcess",
    "ProcessBackend",
    "RunningEnvoy",
    "get_backend",
    "listener_ports_from_admin",
    "proc_cpu_seconds",
    "proc_rss_bytes",
    "start_envoy",
]


class EnvoyProcess(RunningEnvoy):
    def __init__(self, name: str, proc: subprocess.Popen[bytes], workdir: Path, log_path: Path,
                 owns_workdir: OwnedTempDir | None) -> None:
        self.name = name
        self.proc = proc
        self.workdir = workdir
        self.log_path = log_path
        self._tmp = owns_workdir
        self.admin_url = ""
        self.listener_ports = {}

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

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
                admin_path: Path | None = None, mode: str = "serve",
                hot_restart: HotRestart | None = None) -> list[str]:
        """Envoy's argv; without ``hot_restart`` hot restart is off and the base id picked dynamically."""
        cmd = [str(self.binary), "-c", str(config_path), "--concurrency", str(concurrency),
               "-l", log_level, "--mode", mode]
        cmd += hot_restart.flags() if hot_restart is not None else ["--use-dynamic-base-id",
                                                                     "--disable-hot-restart"]
        if admin_path is not None:
            cmd += ["--admin-address-path", str(admin_path)]
        return cmd

    def start(self, bootstrap: Mapping[str, Any], *, name: str = "envoy", concurrency: int = 1,
              log_level: str = "info", timeout: float = 30.0, files: tuple[Path, ...] = (),
              workdir: Path | None = None, cpu: int | None = None,
              hot_restart: HotRestart | None = None) -> EnvoyProcess:
        del files  # the process sees the host filesystem as it is
        tmp = None
        if workdir is None:
            tmp = OwnedTempDir(prefix=f"meshfilter-{name}-")
            workdir = Path(tmp.name)
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "envoy.json"
        config_path.write_text(json.dumps(bootstrap, indent=1))
        admin_path = workdir / "admin-address"
        admin_path.unlink(missing_ok=True)
        log_path = workdir / "envoy.log"
        cmd = self.command(config_path, concurrency=concurrency, log_level=log_level, admin_path=admin_path,
                           hot_restart=hot_restart)
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        try:
            with open(log_path, "wb") as log:
                proc = spawn(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir,
                             start_new_session=True)
        except BaseException:
            if tmp is not None:
                tmp.cleanup()
            raise
        inst = EnvoyProcess(name, proc, workdir, log_path, tmp)
        register(inst)
        try:
            wait_until_ready(inst, admin_path, timeout=timeout, what=f"envoy '{name}'", interval=0.05)
        except BaseException:
            inst.stop()
            raise
        return inst


def get_backend(name: str = "process", **kwargs: Any) -> Backend:
    """The backend named ``name`` ("process" or "container"); ``kwargs`` go to its constructor."""
    if name == "process":
        return ProcessBackend(**kwargs)
    if name == "container":
        from meshfilter.envoy.container import ContainerBackend

        return ContainerBackend(**kwargs)
    raise UsageError(f"unknown Envoy backend {name!r}", where="backend", hint="use process or container")


def start_envoy(bootstrap: Mapping[str, Any], *, backend: str | Backend = "process",
                **kwargs: Any) -> RunningEnvoy:
    """Start Envoy on ``bootstrap`` with the named backend and wait until it is ready."""
    be = get_backend(backend) if isinstance(backend, str) else backend
    return be.start(bootstrap, **kwargs)
