"""Fixtures for the integration tests against a real Envoy.

``envoy_backend`` is parametrized over both runner backends, so every envoy-test that uses it (or
``start``) runs once in a process and once in a container. The container parameter skips only when
no Docker Engine API is reachable; under CI (MESHFILTER_REQUIRE_ALL=1) that skip is a failure.

At the end of the session, ``_no_container_left`` checks that no container started by this test
process (label ``io.meshfilter.pid=<our pid>``) is left over; any that is gets removed by ID and the
session fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from meshfilter.envoy import RunningEnvoy, get_backend


@pytest.fixture(scope="session", params=["process", "container"])
def envoy_backend(request: pytest.FixtureRequest) -> Any:
    name = request.param
    if name == "container":
        from meshfilter.envoy.container import engine_unavailable_reason

        reason = engine_unavailable_reason()
        if reason:
            pytest.skip(f"no container engine: {reason}")
    return get_backend(name)


@pytest.fixture
def start(envoy_backend: Any) -> Iterator[Callable[..., RunningEnvoy]]:
    """``start(bootstrap, **kw)`` starts Envoy on the parametrized backend; stopped at teardown."""
    started: list[RunningEnvoy] = []

    def _start(bootstrap: dict[str, Any], **kwargs: Any) -> RunningEnvoy:
        inst = envoy_backend.start(bootstrap, **kwargs)
        started.append(inst)
        return inst

    yield _start
    for inst in reversed(started):
        inst.stop()


@pytest.fixture(scope="session", autouse=True)
def _no_container_left() -> Iterator[None]:
    """After the suite: no container carrying this process's labels may be left (running or not)."""
    yield
    from meshfilter.envoy.container import container_labels, managed_containers
    from meshfilter.envoy.engine import engine_client, engine_unavailable_reason

    if engine_unavailable_reason() is not None:
        return  # nothing could have been started; the container params already skipped/failed
    client = engine_client()
    try:
        left = managed_containers(client, owner_pid=os.getpid())
        for c in left:
            c.remove(force=True, v=True)
    finally:
        client.close()
    if left:
        names = ", ".join(f"{c.id[:12]} ({container_labels(c).get('io.meshfilter.name', '?')}, {c.status})"
                          for c in left)
        pytest.fail(f"containers left after the envoy-tests session (now removed): {names}")
