"""An Envoy whose configuration is replaced without closing its listeners: Envoy's hot restart.

:class:`ReloadingEnvoy` starts epoch 0 with hot restart on; :meth:`ReloadingEnvoy.reload` checks a new
bootstrap with ``envoy --mode validate`` first (a filter or configuration Envoy refuses never touches
the running Envoy), then starts the next epoch, which takes over the listen sockets themselves (no
connection is refused meanwhile) while the old one drains and exits. Listener ports given as 0 are
pinned to the ports epoch 0 bound, so the URL stays the same.

Works on both backends: the process backend, and the container backend with host networking (every
epoch's container mounts the same hot-restart directory and shares its /dev/shm).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshfilter.envoy.base import Backend, HotRestart, RunningEnvoy
from meshfilter.envoy.validate import refusal_line, validate_bootstrap
from meshfilter.errors import EnvoyError, EnvoyValidationError
from meshfilter.util.fs import OwnedTempDir


@dataclass(frozen=True)
class ReloadResult:
    """What became of one reload: ``accepted`` (then ``epoch`` is the new one), else ``reason``, the
    refusal in the words of whoever refused (a Wasm module's own log line, Lua, Envoy)."""

    accepted: bool
    epoch: int
    reason: str = ""


def pin_listener_ports(bootstrap: Mapping[str, Any], ports: Mapping[str, int]) -> dict[str, Any]:
    """A copy of ``bootstrap`` whose listeners with port 0 listen on ``ports[name]`` (pure)."""
    out = copy.deepcopy(dict(bootstrap))
    for listener in out.get("static_resources", {}).get("listeners", []):
        sa = listener.get("address", {}).get("socket_address")
        if sa is not None and not int(sa.get("port_value", 0)) and listener.get("name") in ports:
            sa["port_value"] = int(ports[listener["name"]])
    return out


class ReloadingEnvoy:
    """One Envoy, reloadable. ``validate(bootstrap)`` raises :class:`EnvoyValidationError` when Envoy
    refuses a bootstrap (default: ``envoy --mode validate`` with the backend's binary, else the host's)."""

    def __init__(self, backend: Backend, *, name: str = "envoy", log_level: str = "warning",
                 timeout: float = 60.0, drain_time_s: int = 2,
                 validate: Callable[[Mapping[str, Any]], object] | None = None) -> None:
        self.backend = backend
        self.name = name
        self.log_level = log_level
        self.timeout = timeout
        self.drain_time_s = drain_time_s
        binary = getattr(backend, "binary", None) if backend.name == "process" else None
        self._validate = validate or (lambda bs: validate_bootstrap(bs, binary=binary))
        self._dir: OwnedTempDir | None = None
        self._restart: HotRestart | None = None
        self._ports: dict[str, int] = {}
        self._retiring: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.current: RunningEnvoy | None = None

    @property
    def epoch(self) -> int:
        return self._restart.epoch if self._restart is not None else 0

    def _spec(self, epoch: int, base_id: int | None) -> HotRestart:
        assert self._dir is not None
        return HotRestart(self._dir.path, epoch=epoch, base_id=base_id, drain_time_s=self.drain_time_s,
                          parent_shutdown_time_s=self.drain_time_s + 2)

    def start(self, bootstrap: Mapping[str, Any], *, files: tuple[Path, ...] = ()) -> RunningEnvoy:
        """Start epoch 0 (a failure raises, as ``backend.start`` does)."""
        self._dir = OwnedTempDir(prefix=f"meshfilter-{self.name}-hot-restart-")
        spec = self._spec(0, None)
        try:
            env = self.backend.start(bootstrap, name=self.name, log_level=self.log_level, timeout=self.timeout,
                                     files=files, hot_restart=spec)
        except BaseException:
            self._dir.cleanup()
            self._dir = None
            raise
        self._restart = self._spec(0, spec.read_base_id())
        self._ports = dict(env.listener_ports)
        self.current = env
        return env

    def reload(self, bootstrap: Mapping[str, Any], *, files: tuple[Path, ...] = ()) -> ReloadResult:
        """Replace the running Envoy by one on ``bootstrap`` if Envoy accepts it; otherwise keep the
        running one serving and say why not."""
        if self.current is None or self._restart is None:
            raise EnvoyError("the Envoy is not running", where=self.name, hint="start() it first")
        pinned = pin_listener_ports(bootstrap, self._ports)
        try:
            self._validate(pinned)
        except EnvoyValidationError as exc:
            return ReloadResult(False, self.epoch, refusal_line(exc.log_tail) or exc.what)
        spec = self._spec(self.epoch + 1, self._restart.base_id)
        try:
            new = self.backend.start(pinned, name=self.name, log_level=self.log_level, timeout=self.timeout,
                                     files=files, hot_restart=spec)
        except EnvoyError as exc:
            return ReloadResult(False, self.epoch, refusal_line(exc.log_tail) if exc.log_tail else exc.what)
        old, self.current, self._restart = self.current, new, spec
        self._retire(old)
        return ReloadResult(True, spec.epoch)

    def _retire(self, old: RunningEnvoy) -> None:
        """The old epoch drains and exits by itself; then (or at :meth:`stop`) it is stopped by PID,
        which also removes its temp directory or container."""
        grace = self.drain_time_s + 6.0

        def wait_and_stop() -> None:
            waited = 0.0
            while old.alive() and waited < grace and not self._stopping.wait(0.1):
                waited += 0.1
            old.stop()

        t = threading.Thread(target=wait_and_stop, name=f"retire-{old.name}", daemon=True)
        t.start()
        self._retiring.append(t)

    def alive(self) -> bool:
        return self.current is not None and self.current.alive()

    def stop(self) -> None:
        self._stopping.set()
        for t in self._retiring:
            t.join(timeout=30)
        self._retiring = []
        if self.current is not None:
            self.current.stop()
            self.current = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> ReloadingEnvoy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
