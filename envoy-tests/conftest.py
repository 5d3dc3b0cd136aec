"""Fixtures for the integration tests against a real Envoy.

``envoy_backend`` is parametrized over both runner backends, so every envoy-test that uses it (or
``start``) runs once in a process and once in a container. The container parameter skips only when
no Docker Engine API is reachable; under CI (MESHFILTER_REQUIRE_ALL=1) that skip is a failure.
"""

from __future__ import annotations

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
