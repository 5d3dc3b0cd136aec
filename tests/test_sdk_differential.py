"""Every example, and a filter using every construct, on the in-process backends: the reference
(the class in CPython), the Wasm module in the emulator and the Lua script in LuaJIT give the same
upstream headers, local reply, downstream headers, route-cache clears and log lines, for fixed
requests and for generated ones (repeated names, empty values, mixed case, non-ASCII bytes).

The same comparison against a real Envoy (Wasm and Lua, process and container) is in
envoy-tests/test_sdk_envoy.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from meshfilter.sdk import HttpFilter, examples
from meshfilter.testing.sdk import IN_PROCESS, FilterUnderTest, load_class
from meshfilter.testing.sdk_requests import FIXED, GeneratedRequest, requests

KITCHEN_SINK = Path(__file__).parent / "data" / "sdk" / "kitchen_sink.py"


def load_kitchen_sink() -> type[HttpFilter]:
    return load_class(KITCHEN_SINK, "KitchenSink")


def cases() -> list[tuple[str, type[HttpFilter], dict[str, Any]]]:
    out = [(name, examples.load(name), cfg) for name, (_, _, cfg) in examples.EXAMPLES.items()]
    out.append(("kitchen-sink", load_kitchen_sink(), {}))
    out.append(("kitchen-sink-loud", load_kitchen_sink(), {"tags": ["a", "b", "abc"], "loud": True, "status": 299}))
    return out


CASES = cases()


@pytest.fixture(params=CASES, ids=[c[0] for c in CASES], scope="module")
def subject(request: pytest.FixtureRequest) -> Any:
    _, cls, cfg = request.param
    with FilterUnderTest(cls, cfg) as fut:
        yield fut


def test_fixed_requests_agree(subject: FilterUnderTest) -> None:
    for headers, path, status in FIXED:
        side = subject.run(headers, path=path, status=status, backends=IN_PROCESS)
        assert side.agree(), (side.request, side.differences())


@settings(max_examples=80)
@given(req=requests())
def test_generated_requests_agree(subject: FilterUnderTest, req: GeneratedRequest) -> None:
    side = subject.run(req.headers, method=req.method, path=req.path, status=req.status, backends=IN_PROCESS)
    assert side.agree(), (side.request, side.differences())


def test_the_comparison_sees_a_wrong_backend() -> None:
    """Negative control: a Wasm module built from another class is caught, field by field."""
    other = examples.load("header-rename")
    with FilterUnderTest(examples.load("gateway-tag"), {}) as fut, \
            FilterUnderTest(other, {"from_header": "user-agent", "to_header": "x-asm-prefer-tag"}) as wrong:
        fut._emu = wrong.emulator()  # the emulator column now runs the other module
        side = fut.run([("user-agent", "iPhone13")], backends=IN_PROCESS)
    assert not side.agree()
    assert any(line.startswith("emulator: request_headers") for line in side.differences())
    assert any(line.startswith("emulator: route_cache_clears") for line in side.differences())
    assert not any(line.startswith("lua:") for line in side.differences())
