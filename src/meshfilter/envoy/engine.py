"""The Docker Engine API endpoint (Docker or Podman): where it is, a client for it, is it up.

Discovery order: ``$DOCKER_HOST``; else the Podman service that ``.ci/container-engine.sh`` starts at
``/run/meshfilter/podman.sock`` if that socket exists; else the docker SDK's own default
(``/var/run/docker.sock``). The API version is negotiated from ``/_ping`` (Podman 4 speaks 1.41).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from meshfilter.errors import ContainerError

PODMAN_SOCKET = Path("/run/meshfilter/podman.sock")


def engine_url() -> str | None:
    """The engine address to use, or None for the docker SDK's default."""
    host = os.environ.get("DOCKER_HOST")
    if host:
        return host
    if PODMAN_SOCKET.exists():
        return f"unix://{PODMAN_SOCKET}"
    return None


def engine_client(timeout: float = 120.0) -> Any:
    """A ``docker.DockerClient`` for the engine; raises ContainerError when none answers.

    The API version is negotiated from ``/_ping``'s ``Api-Version`` header (the lower of the engine's
    and the SDK's), not from ``/version``: Podman answers ``/version`` slowly under load (it probes its
    runtimes), while ``/_ping`` is immediate.
    """
    import docker
    from docker.constants import DEFAULT_DOCKER_API_VERSION

    url = engine_url()
    where = url or "docker SDK default (DOCKER_HOST unset, /var/run/docker.sock)"

    def make(version: str) -> Any:
        if url:
            return docker.DockerClient(base_url=url, version=version, timeout=int(timeout))
        return docker.from_env(version=version, timeout=int(timeout))

    try:
        probe = make(DEFAULT_DOCKER_API_VERSION)
        try:
            resp = probe.api._get(probe.api.base_url + "/_ping")
            probe.api._raise_for_status(resp)
            server = resp.headers.get("Api-Version") or DEFAULT_DOCKER_API_VERSION
        finally:
            probe.close()
        return make(min(server, DEFAULT_DOCKER_API_VERSION, key=_version_key))
    except Exception as exc:  # noqa: BLE001 - DockerException, OSError, requests' connection errors
        raise ContainerError(f"no container engine answers: {_one_line(exc)}", where=where,
                             hint="run 'source .ci/container-engine.sh' (starts Podman's Docker API "
                             "service), or set DOCKER_HOST") from None


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".") if x.isdigit())


def engine_unavailable_reason() -> str | None:
    """None when a Docker Engine API answers /_ping; otherwise why not, in one line."""
    try:
        client = engine_client(timeout=15)
    except ContainerError as exc:
        return exc.line()
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "unavailable", reported as text
        return f"{engine_url() or 'docker default'}: /_ping failed: {_one_line(exc)}"
    finally:
        client.close()
    return None


def engine_name(client: Any) -> str:
    """'podman' or 'docker' (from /version), for messages and docs."""
    try:
        version = client.version()
    except Exception:  # noqa: BLE001
        return "unknown"
    names = " ".join(c.get("Name", "") for c in version.get("Components", []))
    return "podman" if "podman" in names.lower() else "docker"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
