"""Start and stop the local demo mesh: six app processes, one sidecar Envoy each, one ingress Envoy.

:class:`LocalMesh` is a context manager. Whatever it started is stopped on exit, on an exception
(Ctrl-C included: the CLI turns SIGTERM into the same path), and when any component fails to start;
in that case the raised :class:`~meshfilter.errors.DemoError` names the component and carries its log
tail. Every port is chosen by the kernel (listeners and apps bind port 0), except the ingress port,
8001 when it is free, so two demos can run at once. Apps exit by themselves when the orchestrator's
pipe closes, so even a killed orchestrator leaves no app behind.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshfilter.demo import filters as demo_filters
from meshfilter.demo.mesh import (
    Instance,
    Topology,
    WorkloadFilter,
    ingress_bootstrap,
    seed_ab_topology,
    seed_canary_topology,
    selected_filters,
    sidecar_bootstrap,
)
from meshfilter.envoy.base import RunningEnvoy
from meshfilter.envoy.runner import get_backend
from meshfilter.errors import DemoError, MeshfilterError, UsageError
from meshfilter.util.fs import OwnedTempDir
from meshfilter.util.ports import port_is_free
from meshfilter.util.proc import spawn

DEFAULT_INGRESS_PORT = 8001
APP_START_TIMEOUT = 20.0
ENVOY_START_TIMEOUT = 60.0


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


class AppProcess:
    """One hello app as a child process (``python -m meshfilter.demo.apps``), ended by PID."""

    def __init__(self, instance: Instance, topology: Topology, workdir: Path,
                 python: str = sys.executable) -> None:
        self.instance = instance
        self.name = f"app {instance.name}"
        self.log_path = workdir / f"app-{instance.name}.log"
        env = dict(os.environ)
        env["HTTP_HELLO_BACKEND"] = f"{instance.backend}-svc" if instance.backend else ""
        env["HTTP_HELLO_PROPAGATE"] = ",".join(topology.propagate)
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [python, "-m", "meshfilter.demo.apps", "--service", instance.service,
               "--greeting", instance.greeting, "--host", "127.0.0.1", "--port", "0"]
        with open(self.log_path, "wb") as log:
            self.proc = spawn(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                              start_new_session=True)
        self.pid = self.proc.pid
        self.port = 0

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)

    def _fail(self, what: str) -> DemoError:
        return DemoError(what, where=self.name, component=self.name, log_tail=self.log_tail(),
                         hint=f"see the log tail above ({self.log_path.name})")

    def read_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._fail(f"no answer within {timeout:.0f}s")
                if not sel.select(timeout=min(left, 0.5)):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    self.proc.wait(timeout=5)
                    raise self._fail(f"exited with status {self.proc.returncode} before it was ready")
                buf += chunk
        return buf.decode(errors="replace").strip()

    def wait_listening(self, timeout: float = APP_START_TIMEOUT) -> int:
        line = self.read_line(timeout)
        parts = line.split()
        if len(parts) != 3 or parts[0] != "LISTENING":
            raise self._fail(f"unexpected start-up line {line!r}")
        self.port = int(parts[2])
        return self.port

    def connect_sidecar(self, outbound: tuple[str, int] | None, timeout: float = APP_START_TIMEOUT) -> None:
        assert self.proc.stdin is not None
        line = f"{outbound[0]}:{outbound[1]}\n" if outbound else "\n"
        try:
            self.proc.stdin.write(line.encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self._fail("exited before the sidecar handshake") from None
        if self.read_line(timeout) != "READY":
            raise self._fail("did not confirm the sidecar handshake")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()  # the app exits at EOF on its stdin
            except OSError:
                pass
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=5)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class LocalMesh:
    """The demo mesh. ``with LocalMesh(topology, ...) as mesh: mesh.get("/hello/eric", {...})``."""

    def __init__(self, topology: Topology, *, workload_filters: Sequence[WorkloadFilter] = (),
                 ingress_filters: Sequence[dict[str, Any]] = (), backend: str = "process",
                 port: int | None = None, log: Callable[[str], None] | None = None,
                 envoy_timeout: float = ENVOY_START_TIMEOUT, ingress_bootstrap_override: Callable[
                     [dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.topology = topology
        self.workload_filters = list(workload_filters)
        self.ingress_filters = list(ingress_filters)
        self.backend_name = backend
        self.requested_port = port
        self.log = log or (lambda _msg: None)
        self.envoy_timeout = envoy_timeout
        self._override = ingress_bootstrap_override  # tests inject failures through it
        self._tmp: OwnedTempDir | None = None
        self.workdir = Path(".")
        self.apps: dict[str, AppProcess] = {}
        self.sidecars: dict[str, RunningEnvoy] = {}
        self.ingress: RunningEnvoy | None = None
        self._lock = threading.Lock()
        self.ingress_port = 0

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> LocalMesh:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalMesh:
        port = self.requested_port
        if port and not port_is_free(port):  # before anything starts: no 12 processes, no log flood
            raise UsageError(f"port {port} is taken", where="port",
                             hint="stop what listens there, or choose another `port` (0: any free one)")
        self._tmp = OwnedTempDir(prefix=f"meshfilter-demo-{self.topology.name}-")
        self.workdir = Path(self._tmp.name)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        try:
            backend = get_backend(self.backend_name)
        except MeshfilterError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. the container engine's own API errors
            raise DemoError(f"the {self.backend_name} backend is not usable: {type(exc).__name__}: {exc}",
                            where="backend", component=f"{self.backend_name} backend",
                            hint="for containers, check DOCKER_HOST and the engine") from None
        topo = self.topology
        t0 = time.monotonic()
        # 1. the six apps, all at once; each prints the port it bound.
        for inst in topo.instances:
            self.apps[inst.name] = AppProcess(inst, topo, self.workdir)
        for app in self.apps.values():
            app.wait_listening()
        self.log(f"started {len(self.apps)} apps ({', '.join(self.apps)})")
        # 2. sidecars, leaves first, so every outbound cluster knows its backends' inbound ports.
        inbound: dict[str, int] = {}
        for tier in topo.start_order():
            with ThreadPoolExecutor(max_workers=len(tier)) as pool:
                futures = {inst.name: pool.submit(self._start_sidecar, backend, inst, inbound) for inst in tier}
                errors = []
                for _name, fut in futures.items():
                    try:
                        fut.result()
                    except BaseException as exc:  # noqa: BLE001 - re-raised below after the tier settles
                        errors.append(exc)
                if errors:
                    raise errors[0]
            for inst in tier:
                env = self.sidecars[inst.name]
                inbound[inst.name] = env.listener_ports["inbound"]
                out = ("127.0.0.1", env.listener_ports["outbound"]) if inst.backend else None
                self.apps[inst.name].connect_sidecar(out)
        self.log(f"started {len(self.sidecars)} sidecar Envoys")
        # 3. the ingress gateway.
        self._start_ingress(backend, inbound)
        self.log(f"mesh '{topo.name}' up in {time.monotonic() - t0:.1f}s: ingress {self.url()} "
                 f"({1 + len(self.sidecars)} Envoys on the {self.backend_name} backend, {len(self.apps)} apps)")

    def _start_envoy(self, backend: Any, bootstrap: Mapping[str, Any], name: str) -> RunningEnvoy:
        try:
            env: RunningEnvoy = backend.start(bootstrap, name=name, concurrency=1, log_level="info",
                                              timeout=self.envoy_timeout)
            return env
        except MeshfilterError as exc:  # EnvoyError (with Envoy's log), ContainerError, ...
            raise DemoError(f"Envoy '{name}' failed to start: {exc.what}", where=name, component=name,
                            log_tail=getattr(exc, "log_tail", ""),
                            hint=exc.hint or "see the log tail above") from None
        except Exception as exc:  # noqa: BLE001 - e.g. the container engine's own API errors
            raise DemoError(f"Envoy '{name}' failed to start: {type(exc).__name__}: {exc}", where=name,
                            component=name, hint=f"check the {self.backend_name} backend") from None

    def _start_sidecar(self, backend: Any, inst: Instance, inbound: Mapping[str, int]) -> None:
        chosen = selected_filters(inst, self.workload_filters)
        flts = [f.http_filter for f in chosen]
        boot = sidecar_bootstrap(self.topology, inst, app_port=self.apps[inst.name].port,
                                 inbound_ports=inbound, outbound_filters=flts)
        name = f"sidecar-{inst.name}"
        env = self._start_envoy(backend, boot, name)
        with self._lock:
            self.sidecars[inst.name] = env
        for f in chosen:
            self.log(f"{name}: outbound filter {f.id} ({f.summary})")

    def _start_ingress(self, backend: Any, inbound: Mapping[str, int]) -> None:
        port = self.requested_port
        auto = port is None
        if auto:
            port = DEFAULT_INGRESS_PORT if port_is_free(DEFAULT_INGRESS_PORT) else 0
            if port == 0:
                self.log(f"port {DEFAULT_INGRESS_PORT} is taken; the ingress takes a free port")
        assert port is not None
        for attempt in (1, 2):
            boot = ingress_bootstrap(self.topology, port=port, inbound_ports=inbound,
                                     http_filters=self.ingress_filters)
            if self._override is not None:
                boot = self._override(boot)
            try:
                self.ingress = self._start_envoy(backend, boot, "ingress")
                break
            except DemoError as exc:
                # 8001 was free a moment ago but another demo won the race: take any port.
                if auto and port and attempt == 1 and "in use" in exc.log_tail:
                    self.log(f"port {port} was taken meanwhile; the ingress takes a free port")
                    port = 0
                    continue
                raise
        assert self.ingress is not None
        self.ingress_port = self.ingress.listener_ports["gateway"]

    def stop(self) -> None:
        """Stop everything started: the Envoys (in parallel: container removal is slow), then the
        apps. Safe to call twice."""
        errors: list[BaseException] = []
        envoys: list[RunningEnvoy] = ([self.ingress] if self.ingress is not None else []) + list(
            self.sidecars.values())

        def stop_one(comp: Any) -> None:
            try:
                comp.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                errors.append(exc)

        if envoys:
            with ThreadPoolExecutor(max_workers=min(8, len(envoys))) as pool:
                list(pool.map(stop_one, envoys))
        for app in list(self.apps.values())[::-1]:
            stop_one(app)
        self.ingress = None
        self.sidecars = {}
        self.apps = {}
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if errors:
            raise DemoError(f"stopping the mesh: {errors[0]}", where="demo")

    # -- use -----------------------------------------------------------------------------------
    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ingress_port}{path}"

    def pids(self) -> list[int]:
        """PIDs of every process started (apps, and Envoys on the process backend)."""
        out = [a.pid for a in self.apps.values()]
        for env in [*self.sidecars.values(), *([self.ingress] if self.ingress else [])]:
            pid = getattr(env, "pid", None)
            if isinstance(pid, int):
                out.append(pid)
        return out

    def get(self, path: str, headers: Mapping[str, str] | None = None, timeout: float = 20.0) -> tuple[int, str]:
        req = urllib.request.Request(self.url(path), headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback
                return resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as exc:
            raise DemoError(f"request to the ingress failed: {exc}", where=self.url(path),
                            component="ingress", log_tail=self.ingress.log_tail() if self.ingress else "") from None


# -- the two demos ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Probe:
    """One request of a demo and what it showed."""

    label: str
    headers: tuple[tuple[str, str], ...]
    status: int = 0
    body: str = ""

    def curl(self, url: str) -> str:
        flags = "".join(f" -A '{v}'" if k.lower() == "user-agent" else f" -H '{k}: {v}'"
                        for k, v in self.headers)
        return f"curl{flags} {url}"


DEMO_PATH = "/hello/eric"

AB_PROBES = (
    Probe("with the header", (("route-v", "v2"),)),
    Probe("without the header", ()),
)

IPHONE_UA = "Mozilla/5.0 (iPhone13,2; U; CPU iPhone OS 15_0 like Mac OS X) AppleWebKit/602.1.50 Mobile/15E148"
OTHER_UA = "Mozilla/5.0 (Linux; Android 12; Pixel 6) AppleWebKit/537.36 Mobile Safari/537.36"
CANARY_PROBES = (
    Probe("iPhone13 user agent (gray)", (("user-agent", IPHONE_UA),)),
    Probe("other user agent (base)", (("user-agent", OTHER_UA),)),
    Probe("other user agent claiming gray (tag replaced at the gateway: base)",
          (("user-agent", OTHER_UA), ("x-asm-prefer-tag", "version-gray"))),
)


def ab_mesh(*, backend: str = "process", port: int | None = None, only: Sequence[str] | None = None,
            log: Callable[[str], None] | None = None, **kw: Any) -> LocalMesh:
    """The seed's A/B mesh (section 2.2), its propagate-header filters taken from the seed's
    ASMFilterDeployments (all, or ``only`` those named, e.g. ``["hello1"]``)."""
    deployments = demo_filters.seed_filter_deployments(only)
    root_ids = {str(d["spec"]["filter"]["rootID"]) for d in deployments}
    modules = {rid: demo_filters.build_module(rid) for rid in root_ids}
    flts: list[WorkloadFilter] = []
    for dep in deployments:
        flts += demo_filters.workload_filters([dep], modules[str(dep["spec"]["filter"]["rootID"])])
    return LocalMesh(seed_ab_topology(), workload_filters=flts, backend=backend, port=port, log=log, **kw)


def canary_mesh(*, backend: str = "process", port: int | None = None,
                log: Callable[[str], None] | None = None, **kw: Any) -> LocalMesh:
    """The seed's gateway-tagging canary (section 2.4) on the hello chain."""
    return LocalMesh(seed_canary_topology(), ingress_filters=[demo_filters.gateway_tagging_filter()],
                     backend=backend, port=port, log=log, **kw)


def run_probes(mesh: LocalMesh, probes: Sequence[Probe], path: str = DEMO_PATH) -> list[Probe]:
    out = []
    for p in probes:
        status, body = mesh.get(path, dict(p.headers))
        out.append(Probe(p.label, p.headers, status, body))
    return out


__all__ = [
    "AB_PROBES",
    "CANARY_PROBES",
    "DEMO_PATH",
    "AppProcess",
    "LocalMesh",
    "Probe",
    "ab_mesh",
    "canary_mesh",
    "port_is_free",
    "run_probes",
]
