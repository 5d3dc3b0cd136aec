"""pytest plugin for filter authors: a real Envoy with your filters, and the Wasm host emulator.

Installed through the ``pytest11`` entry point, so ``pip install meshfilter`` makes these fixtures
available in any test suite:

``echo_upstream``
    An :class:`~meshfilter.envoy.EchoServer` answering with the request headers it received.
``envoy_with_filters``
    A factory: ``envoy_with_filters([http_filter, ...], upstream=None)`` starts a real Envoy whose
    listener ``main`` runs the filters and routes to ``upstream`` (default: ``echo_upstream``).
    Returns a :class:`~meshfilter.envoy.RunningEnvoy`; stopped at teardown, even when the test fails.
``wasm_emulator``
    A factory for the proxy-wasm host emulator (see ``meshfilter.wasm.emulator``):
    ``wasm_emulator(module_or_path, root_id=..., plugin_config=...)``.
``filter_backends``
    For filters written in Python (``meshfilter.sdk``): ``filter_backends(FilterClass, config, headers,
    status=200)`` runs one request on every backend (the reference, the Wasm emulator, Lua in LuaJIT,
    a real Envoy running the Wasm module and one running the Lua script) and returns the results side by
    side (:class:`meshfilter.testing.sdk.SideBySide`: ``.agree()``, ``.differences()``, ``[backend]``).
    Each class and configuration is compiled once per test; the Envoys stop at teardown.
``landing_server``
    The seed's gRPC LandingService (``meshfilter.examples.landing``) on a free loopback port;
    the fixture's value is ``"127.0.0.1:PORT"``. Stopped at teardown.
``oci_registry``
    A real OCI registry for the test session: Debian's ``docker-registry`` on a free loopback port,
    plain HTTP, temporary storage (:class:`meshfilter.oras.server.RegistryServer`, the same code as
    ``meshfilter registry serve``). ``oci_registry.host``; ``RegistryClient(ref, **oci_registry.client_kwargs())``.
``oci_registry_factory``
    ``oci_registry_factory(users={"u": "pw"}, tls=True, ...)`` starts another one with those
    :class:`~meshfilter.oras.server.RegistryServer` options; each is stopped at teardown.

Command-line option ``--meshfilter-backend process|container`` picks the Envoy backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from meshfilter.envoy import EchoServer, RunningEnvoy, bootstrap, get_backend


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("meshfilter")
    group.addoption("--meshfilter-backend", default="process", choices=["process", "container"],
                    help="Envoy backend for the meshfilter fixtures (default: process)")


@pytest.fixture
def echo_upstream() -> Iterator[EchoServer]:
    with EchoServer() as echo:
        yield echo


@pytest.fixture
def envoy_with_filters(request: pytest.FixtureRequest,
                       echo_upstream: EchoServer) -> Iterator[Callable[..., RunningEnvoy]]:
    backend = get_backend(request.config.getoption("--meshfilter-backend"))
    started: list[RunningEnvoy] = []

    def _start(http_filters: Sequence[dict[str, Any]], *, upstream: tuple[str, int] | None = None,
               **kwargs: Any) -> RunningEnvoy:
        up = upstream or (echo_upstream.host, echo_upstream.port)
        inst = backend.start(bootstrap.filter_bootstrap(http_filters, upstream=up), **kwargs)
        started.append(inst)
        return inst

    yield _start
    for inst in reversed(started):
        inst.stop()


@pytest.fixture
def wasm_emulator() -> Any:
    import importlib

    fixtures = importlib.import_module("meshfilter.wasm.pytest_fixtures")
    factory: Callable[..., Any] = fixtures.emulator_factory
    return factory


@pytest.fixture
def filter_backends(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    from meshfilter.testing.sdk import side_by_side

    with side_by_side(get_backend(request.config.getoption("--meshfilter-backend"))) as run:
        yield run


@pytest.fixture
def landing_server() -> Iterator[str]:
    from meshfilter.examples.landing import serve

    server, port = serve(0, "127.0.0.1")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


@pytest.fixture(scope="session")
def oci_registry() -> Iterator[Any]:
    from meshfilter.oras.server import RegistryServer

    with RegistryServer() as reg:
        yield reg


@pytest.fixture
def oci_registry_factory() -> Iterator[Callable[..., Any]]:
    from meshfilter.oras.server import RegistryServer

    started: list[RegistryServer] = []

    def _start(**kwargs: Any) -> RegistryServer:
        reg = RegistryServer(**kwargs)
        started.append(reg)
        return reg.start()

    yield _start
    for reg in reversed(started):
        reg.stop()
