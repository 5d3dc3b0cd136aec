"""The "container" Envoy backend: Envoy in a container through the Docker Engine API (Docker or Podman).

Same interface as :class:`meshfilter.envoy.runner.ProcessBackend`. What it does on ``start``:

* Writes the bootstrap to a host temp dir and bind-mounts it **read-only at the identical path**, with
  every local file the bootstrap references (Wasm modules, descriptor sets, Lua files, certs: any
  absolute path to an existing file, e.g. under ``filename`` or ``proto_descriptor`` keys) and every
  ``files=`` path. File access-log directories are mounted read-write.
* Networking: ``network="host"`` (default) runs the bootstrap unchanged, so 127.0.0.1 listeners on
  port 0 and upstreams on the host loopback work as with the process backend. ``network="bridge"``
  rewrites listener and admin addresses to 0.0.0.0 with fixed free ports and publishes those ports on
  127.0.0.1 (host loopback upstreams are then not reachable: use it for direct responses or remote
  upstreams).
* Readiness on admin ``/ready``; on failure an :class:`EnvoyError` carrying Envoy's log tail.
* Labels every container (``io.meshfilter.managed``, ``.session``, ``.pid``, ``.pid-start``, ``.host``,
  ``.name``). The container is removed by ID on ``stop()``/at exit; a container whose owner process is
  dead (a crashed or SIGKILLed run) is removed by :func:`cleanup_leftovers`, which every backend runs
  when it is created.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from meshfilter.envoy.base import HotRestart, RunningEnvoy, register, wait_until_ready
from meshfilter.envoy.engine import engine_client, engine_unavailable_reason
from meshfilter.envoy.image import ENVOY_IN_IMAGE, ImageInfo, ensure_image
from meshfilter.errors import ContainerError, UsageError
from meshfilter.util.fs import OwnedTempDir
from meshfilter.util.ports import free_ports
from meshfilter.util.proc import pid_alive, pid_start_time, proc_stat

__all__ = [
    "ContainerBackend",
    "EnvoyContainer",
    "cleanup_leftovers",
    "engine_unavailable_reason",
    "managed_containers",
    "owner_labels",
    "publish_bootstrap",
    "referenced_paths",
]

LABEL_MANAGED = "io.meshfilter.managed"
LABEL_SESSION = "io.meshfilter.session"
LABEL_PID = "io.meshfilter.pid"
LABEL_PID_START = "io.meshfilter.pid-start"
LABEL_HOST = "io.meshfilter.host"
LABEL_NAME = "io.meshfilter.name"

SESSION = uuid.uuid4().hex  # one per interpreter
NETWORKS = ("host", "bridge")
_NOT_MOUNTED = ("/dev/", "/proc/", "/sys/")


# ---------------------------------------------------------------- pure helpers (unit-tested)

def referenced_paths(bootstrap: Mapping[str, Any]) -> tuple[list[Path], list[Path]]:
    """(read-only files, read-write dirs) a bootstrap needs from the host filesystem.

    Read-only: every string value that is an absolute path to an existing regular file (this covers
    ``filename`` DataSources, ``proto_descriptor``, TLS files). Read-write: the parent directory of
    each file access log's ``path`` (and admin ``access_log_path``) outside /dev.
    """
    files: list[Path] = []
    dirs: list[Path] = []

    def walk(node: Any, key: str = "", parent: Mapping[str, Any] | None = None) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, str(k), node)
        elif isinstance(node, list):
            for v in node:
                walk(v, key, parent)
        elif isinstance(node, str) and node.startswith("/") and not node.startswith(_NOT_MOUNTED):
            is_log = (key == "access_log_path" or (key == "path" and parent is not None
                      and str(parent.get("@type", "")).endswith("FileAccessLog")))
            if is_log:
                d = Path(node).parent
                if d not in dirs:
                    dirs.append(d)
                return
            p = Path(node)
            try:
                if p.is_file() and p not in files:
                    files.append(p)
            except OSError:
                pass

    walk(bootstrap)
    files = [f for f in files if not any(d in f.parents for d in dirs)]
    return files, dirs


def publish_bootstrap(bootstrap: Mapping[str, Any],
                      ports: Iterator[int]) -> tuple[dict[str, Any], dict[str, int], int]:
    """For bridge networking: a copy of ``bootstrap`` whose listeners and admin listen on 0.0.0.0,
    port 0 replaced by the next of ``ports``. Returns (bootstrap, {listener: port}, admin port)."""
    out = copy.deepcopy(dict(bootstrap))
    listener_ports: dict[str, int] = {}

    def fix(addr: dict[str, Any]) -> int:
        sa = addr.setdefault("socket_address", {})
        sa["address"] = "0.0.0.0"
        if not int(sa.get("port_value", 0)):
            sa["port_value"] = next(ports)
        return int(sa["port_value"])

    for listener in out.get("static_resources", {}).get("listeners", []):
        if "socket_address" in listener.get("address", {}):
            listener_ports[listener.get("name", "")] = fix(listener["address"])
    admin = out.setdefault("admin", {})
    admin_port = fix(admin.setdefault("address", {"socket_address": {"address": "0.0.0.0", "port_value": 0}}))
    return out, listener_ports, admin_port


def owner_labels(name: str, pid: int | None = None) -> dict[str, str]:
    pid = os.getpid() if pid is None else pid
    return {LABEL_MANAGED: "true", LABEL_SESSION: SESSION, LABEL_PID: str(pid),
            LABEL_PID_START: pid_start_time(pid) or "", LABEL_HOST: socket.gethostname(), LABEL_NAME: name}


def owner_alive(labels: Mapping[str, str]) -> bool:
    """Is the process that started a labelled container still running (same host, same PID start)?"""
    try:
        pid = int(labels.get(LABEL_PID, ""))
    except ValueError:
        return False
    return pid_alive(pid, labels.get(LABEL_PID_START) or None)


# ---------------------------------------------------------------- engine-side helpers

def managed_containers(client: Any | None = None, *, owner_pid: int | None = None,
                       session: str | None = None, running_only: bool = False) -> list[Any]:
    """Containers carrying our labels, optionally only one owner's or one session's."""
    client = client or engine_client()
    filters: list[str] = [f"{LABEL_MANAGED}=true"]
    if owner_pid is not None:
        filters.append(f"{LABEL_PID}={owner_pid}")
    if session is not None:
        filters.append(f"{LABEL_SESSION}={session}")
    # sparse: no per-container inspect, which fails with 500 "no such container" when another
    # process removes one of them between the list and the inspect.
    found = client.containers.list(all=not running_only, filters={"label": filters}, sparse=True)
    # Filter again client-side: engines differ in how they combine several label filters.
    out = []
    for c in found:
        labels = container_labels(c)
        if labels.get(LABEL_MANAGED) != "true":
            continue
        if owner_pid is not None and labels.get(LABEL_PID) != str(owner_pid):
            continue
        if session is not None and labels.get(LABEL_SESSION) != session:
            continue
        out.append(c)
    return out


def container_labels(container: Any) -> dict[str, str]:
    """Labels of a container object, sparse (from a list) or full (from an inspect)."""
    attrs = container.attrs or {}
    if attrs.get("Labels") is not None:  # list output (Docker; Podman also sends "Config": null)
        return dict(attrs["Labels"])
    return dict((attrs.get("Config") or {}).get("Labels") or {})


def cleanup_leftovers(client: Any | None = None) -> list[str]:
    """Remove (by ID) our containers whose owner process on this host is gone. Returns their IDs."""
    from docker.errors import APIError, NotFound

    client = client or engine_client()
    removed: list[str] = []
    host = socket.gethostname()
    for c in managed_containers(client):
        labels = container_labels(c)
        if labels.get(LABEL_HOST, host) != host or owner_alive(labels):
            continue
        try:
            c.remove(force=True, v=True)
            removed.append(c.id)
        except NotFound:
            pass
        except APIError as exc:  # another process may be removing it at the same time
            if "no such container" not in str(exc).lower():
                raise ContainerError(f"cannot remove leftover container: {exc.explanation or exc}",
                                     where=c.id[:12]) from None
    return removed


# ---------------------------------------------------------------- the running container

class EnvoyContainer(RunningEnvoy):
    """Envoy in a container. ``id`` is the container ID; ``pid`` the Envoy PID as the host sees it."""

    def __init__(self, name: str, container: Any, workdir: OwnedTempDir, network: str, image: str) -> None:
        self.name = name
        self.container = container
        self.id: str = container.id
        self.network = network
        self.image = image
        self._tmp: OwnedTempDir | None = workdir
        self.workdir = Path(workdir.name)
        self.admin_url = ""
        self.listener_ports = {}
        self._final_log: str | None = None
        self._pid: int | None = None
        self._proc_start: int | None = None  # Envoy's /proc start time when its PID is visible here
        self._checked_at = 0.0
        self.published: dict[str, tuple[str, int]] = {}  # bridge: "port/tcp" -> (host ip, host port)

    @property
    def pid(self) -> int:
        if self._pid is None:
            self.container.reload()
            self._pid = int(self.container.attrs.get("State", {}).get("Pid") or 0)
        return self._pid

    def log_text(self) -> str:
        if self._final_log is not None:
            return self._final_log
        try:
            return bytes(self.container.logs(stdout=True, stderr=True)).decode(errors="replace")
        except Exception:  # noqa: BLE001 - container gone: no log
            return ""

    def alive(self) -> bool:
        """Running? Read from the host's /proc when Envoy's PID is visible here (no engine round trip:
        Podman answers inspect slowly under load); otherwise from the engine, at most every 0.5 s."""
        if self._final_log is not None:
            return False
        if self._proc_start is not None and self._pid is not None:
            st = proc_stat(self._pid)
            return st is not None and st.start_time == self._proc_start and st.running
        now = time.monotonic()
        if now - self._checked_at >= 0.5:
            self._checked_at = now
            try:
                self.container.reload()
            except Exception:  # noqa: BLE001 - gone
                return False
        return str(self.container.status) in ("created", "running", "restarting")

    def watch_host_pid(self) -> None:
        """After start: learn Envoy's host PID; use /proc for liveness if it is this host's Envoy."""
        try:
            self.container.reload()
            pid = int(self.container.attrs.get("State", {}).get("Pid") or 0)
        except Exception:  # noqa: BLE001
            return
        self._checked_at = time.monotonic()
        if pid <= 0:
            return
        self._pid = pid
        st = proc_stat(pid)  # None, or not Envoy: a remote engine, or another PID namespace
        if st is not None and st.comm == "envoy":
            self._proc_start = st.start_time

    def labels(self) -> dict[str, str]:
        return dict(self.container.labels or {})

    def _terminate(self) -> None:
        from docker.errors import APIError, NotFound

        if self._final_log is None:
            # SIGTERM, then wait on the (cheap) liveness check; SIGKILL after 10 s.
            try:
                self.container.kill(signal="SIGTERM")
                deadline = time.monotonic() + 10
                while self.alive() and time.monotonic() < deadline:
                    time.sleep(0.05)
                if self.alive():
                    self.container.kill(signal="SIGKILL")
            except (NotFound, APIError):
                pass  # already exited (the engine refuses to signal a stopped container) or gone
            self._final_log = self.log_text()
            try:
                self.container.remove(force=True, v=True)
            except NotFound:
                pass
            except APIError as exc:
                if "no such container" not in str(exc).lower():
                    raise ContainerError(f"cannot remove container: {exc.explanation or exc}",
                                         where=self.id[:12]) from None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


# ---------------------------------------------------------------- the backend

class ContainerBackend:
    """Run Envoy in a container through the Docker Engine API (Docker or Podman).

    ``image``: an existing image to use (``$MESHFILTER_ENVOY_IMAGE`` by default); otherwise the minimal
    local image is built on first use (see :mod:`meshfilter.envoy.image`). ``network``: "host" or
    "bridge" (see the module docstring). ``envoy_path``: the Envoy binary inside the image.
    """

    name = "container"

    def __init__(self, image: str | None = None, *, network: str = "host", client: Any | None = None,
                 binary: str | os.PathLike[str] | None = None, envoy_path: str = ENVOY_IN_IMAGE,
                 cleanup: bool = True) -> None:
        if network not in NETWORKS:
            raise UsageError(f"unknown container network {network!r}", where="network",
                             hint="use host or bridge")
        self.client = client or engine_client()
        self.network = network
        self.binary = binary
        self.envoy_path = envoy_path
        self._image_ref = image or os.environ.get("MESHFILTER_ENVOY_IMAGE") or None
        self._image: ImageInfo | None = None
        self.removed_leftovers: list[str] = cleanup_leftovers(self.client) if cleanup else []

    def image(self) -> ImageInfo:
        """The image Envoy runs from: built (or pulled) on first use, then cached."""
        if self._image is None:
            self._image = ensure_image(self.client, image=self._image_ref, binary=self.binary)
        return self._image

    def start(self, bootstrap: Mapping[str, Any], *, name: str = "envoy", concurrency: int = 1,
              log_level: str = "info", timeout: float = 30.0, files: tuple[Path, ...] = (),
              workdir: Path | None = None, cpu: int | None = None,
              hot_restart: HotRestart | None = None, network: str | None = None) -> EnvoyContainer:
        del workdir  # the container's files live in a fresh host temp dir mounted at the same path
        net = network or self.network
        if net not in NETWORKS:
            raise UsageError(f"unknown container network {net!r}", where="network", hint="use host or bridge")
        if hot_restart is not None and net != "host":
            raise UsageError("hot restart needs host networking (a published port cannot be handed over)",
                             where="network", hint="set `network` to host")
        image = self.image()
        tmp = OwnedTempDir(prefix=f"meshfilter-{name}-")
        try:
            inst = self._create(bootstrap, tmp, name=name, concurrency=concurrency, log_level=log_level,
                                files=files, network=net, image=image.ref, hot_restart=hot_restart)
        except BaseException:
            tmp.cleanup()
            raise
        register(inst)
        try:
            inst.container.start()
            inst.watch_host_pid()
            wait_until_ready(inst, inst.workdir / "run" / "admin-address", timeout=timeout, interval=0.1,
                             what=f"envoy '{name}' (container {inst.id[:12]})")
            if cpu is not None:
                subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(inst.pid)], check=True,
                               capture_output=True, timeout=10)
        except BaseException as exc:
            inst.stop()
            from docker.errors import APIError

            if isinstance(exc, APIError):
                raise ContainerError(f"container did not start: {exc.explanation or exc}",
                                     where=f"{name} ({inst.id[:12]})", hint=_start_hint(str(exc))) from None
            raise
        return inst

    def _create(self, bootstrap: Mapping[str, Any], tmp: OwnedTempDir, *, name: str,
                concurrency: int, log_level: str, files: tuple[Path, ...], network: str,
                image: str, hot_restart: HotRestart | None = None) -> EnvoyContainer:
        from docker.errors import APIError

        work = Path(tmp.name)
        run_dir = work / "run"  # read-write: Envoy writes its admin address here
        run_dir.mkdir()
        ports: dict[str, tuple[str, int]] = {}
        config: Mapping[str, Any] = bootstrap
        if network == "bridge":
            config, listener_ports, admin_port = publish_bootstrap(bootstrap, iter(free_ports(16)))
            for port in [*listener_ports.values(), admin_port]:
                ports[f"{port}/tcp"] = ("127.0.0.1", port)
        config_path = work / "envoy.json"
        config_path.write_text(json.dumps(config, indent=1))
        ro_files, rw_dirs = referenced_paths(config)
        volumes: dict[str, dict[str, str]] = {str(config_path): {"bind": str(config_path), "mode": "ro"},
                                              str(run_dir): {"bind": str(run_dir), "mode": "rw"}}
        for f in [*ro_files, *(Path(p).resolve() for p in files)]:
            volumes.setdefault(str(f), {"bind": str(f), "mode": "ro"})
        for d in rw_dirs:
            d.mkdir(parents=True, exist_ok=True)
            volumes[str(d)] = {"bind": str(d), "mode": "rw"}
        cmd = ["-c", str(config_path), "--concurrency", str(concurrency), "-l", log_level,
               "--admin-address-path", str(run_dir / "admin-address")]
        kwargs: dict[str, Any] = {"network_mode": "host"} if network == "host" else {"ports": ports}
        if hot_restart is None:
            cmd.append("--disable-hot-restart")
        else:
            # Every epoch's container sees the same hot-restart directory (the domain sockets) and the
            # same /dev/shm (Envoy's hot-restart shared memory), which is that directory's "shm".
            shm = hot_restart.directory / "shm"
            shm.mkdir(parents=True, exist_ok=True)
            volumes[str(hot_restart.directory)] = {"bind": str(hot_restart.directory), "mode": "rw"}
            volumes[str(shm)] = {"bind": "/dev/shm", "mode": "rw"}
            cmd += hot_restart.flags()
        try:
            container = self.client.containers.create(
                image, cmd, entrypoint=[self.envoy_path], name=f"meshfilter-{name}-{uuid.uuid4().hex[:10]}",
                labels=owner_labels(name), volumes=volumes, working_dir=str(work), detach=True, **kwargs)
        except APIError as exc:
            raise ContainerError(f"cannot create the Envoy container: {exc.explanation or exc}",
                                 where=f"{name} ({image})", hint=_start_hint(str(exc))) from None
        inst = EnvoyContainer(name, container, tmp, network, image)
        inst.published = ports
        return inst


def _start_hint(message: str) -> str:
    low = message.lower()
    if "rlimit" in low or "ulimit" in low:
        return ("the sandbox forbids raising rlimits: set default_ulimits in /etc/containers/containers.conf "
                "(run .ci/container-engine.sh)")
    if "crun" in low or "cgroup" in low:
        return "use the runc runtime ([engine] runtime = \"runc\" in /etc/containers/containers.conf)"
    if "address already in use" in low or "port" in low:
        return "a published port is taken; retry, or use network='host'"
    return "see the engine's log; docs/container.md lists the known setup problems"
