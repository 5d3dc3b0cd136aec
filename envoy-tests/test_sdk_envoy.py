"""Filters written in Python in a real Envoy: for every example and a filter using every construct,
the reference runner, the emulator, LuaJIT in-process, Envoy running the Wasm module and Envoy running
the Lua script give the same upstream headers, local reply, downstream headers and route selection;
for fixed requests and for generated ones (repeated names, empty values, mixed case, non-ASCII bytes).
Both Envoy backends count: every test runs once as a process and once in a container."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from meshfilter.sdk import examples
from meshfilter.testing.sdk import BACKENDS, FilterUnderTest, load_class
from meshfilter.testing.sdk_requests import FIXED, GeneratedRequest, requests

KITCHEN_SINK = Path(__file__).resolve().parent.parent / "tests" / "data" / "sdk" / "kitchen_sink.py"


def _cases() -> list[tuple[str, str, Any]]:
    out: list[tuple[str, str, Any]] = [(name, "0.2.1", cfg) for name, (_, _, cfg) in examples.EXAMPLES.items()]
    out += [("api-key", "0.1.0", examples.EXAMPLES["api-key"][2]), ("kitchen-sink", "0.2.1", {})]
    return out


def _class(name: str) -> Any:
    return load_class(KITCHEN_SINK, "KitchenSink") if name == "kitchen-sink" else examples.load(name)


@pytest.mark.parametrize(("name", "abi", "config"), _cases(), ids=[f"{n}-{a}" for n, a, _ in _cases()])
def test_every_backend_agrees(envoy_backend: Any, name: str, abi: str, config: Any) -> None:
    with FilterUnderTest(_class(name), config, envoy_backend=envoy_backend, abi=abi) as fut:
        for headers, path, status in FIXED:
            side = fut.run(headers, path=path, status=status)
            assert set(side.outcomes) == set(BACKENDS)
            assert side.agree(), (side.request, side.differences())

        @settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(req=requests())
        def generated(req: GeneratedRequest) -> None:
            side = fut.run(req.headers, method=req.method, path=req.path, status=req.status)
            assert side.agree(), (side.request, side.differences())

        generated()
        for kind in ("wasm", "lua"):
            errors = [ln for ln in fut.envoy(kind).log_text().splitlines()
                      if "[critical]" in ln or ("[error]" in ln and ("wasm" in ln or "lua" in ln))
                      and "response " not in ln]
            assert errors == [], errors


def test_the_envoy_comparison_sees_a_route_difference(envoy_backend: Any) -> None:
    """Negative control: header-rename never clears the route cache, but renaming writes a request
    header, which Envoy 1.40 answers by selecting the route again; without a write it does not."""
    cls = examples.load("header-rename")
    with FilterUnderTest(cls, {"from_header": "x-old-id", "to_header": "x-id"}, envoy_backend=envoy_backend) as fut:
        moved = fut.run([("x-old-id", "1")], backends=("reference", "envoy-wasm", "envoy-lua"))
        still = fut.run([], backends=("reference", "envoy-wasm", "envoy-lua"))
    assert moved.agree() and still.agree()
    assert moved["envoy-wasm"].route_reselected is True and moved["envoy-lua"].route_reselected is True
    assert still["envoy-wasm"].route_reselected is False and still["envoy-lua"].route_reselected is False
    upstream = moved["envoy-wasm"].request_headers
    assert upstream is not None and upstream["x-id"] == ["1"] and "x-old-id" not in upstream


@pytest.mark.parametrize(("body", "saw"), [("", "no"), ("denied", "yes")])
def test_a_local_reply_shows_content_length_only_with_a_body(envoy_backend: Any, body: str, saw: str) -> None:
    """Envoy 1.40 shows a filter's own response callback a content-length on its local reply only when the
    reply has a body; the emulator and the reference do the same."""
    cls = load_class(KITCHEN_SINK.parent / "local_reply_headers.py", "LocalReplyHeaders")
    with FilterUnderTest(cls, {"body": body}, envoy_backend=envoy_backend) as fut:
        side = fut.run([("x-a", "1")])
    assert side.agree(), side.differences()
    for name in BACKENDS:
        assert side[name].response_headers["x-saw-content-length"] == [saw], name
