"""pytest support for filter authors: the proxy-wasm host emulator as a fixture.

The ``wasm_emulator`` fixture of the meshfilter pytest plugin returns :func:`emulator_factory`::

    def test_my_filter(wasm_emulator):
        emu = wasm_emulator("build/filter.wasm", plugin_config={"head_tag_name": "route-v",
                                                                "head_tag_value": "hello2v2"},
                            root_id="propaganda_filter_root")
        assert emu.configured
        result = emu.run_request([(":path", "/"), ("route-v", "old")])
        assert result.request_header_values("route-v") == ["hello2v2"]
        assert emu.logs_at("error") == []

    def test_my_tcp_filter(wasm_emulator):
        result = wasm_emulator("build/tcp.wasm").run_connection([b"ping"], [b"pong"])
        assert result.downstream_data == b"ping"
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import pytest

from meshfilter.wasm.emulator import HostEmulator


def emulator_factory(module: bytes | str | os.PathLike[str], *,
                     plugin_config: bytes | str | Mapping[str, Any] = b"",
                     vm_config: bytes | str | Mapping[str, Any] = b"", root_id: str = "",
                     start: bool = True, **kwargs: Any) -> HostEmulator:
    """A :class:`HostEmulator` for ``module`` (Wasm bytes, WAT text or a path), started unless ``start=False``.

    ``plugin_config``/``vm_config`` may be a dict, sent as JSON. Starting runs VM start and configure;
    check ``emu.configured`` (False when the module refused its configuration). Other keyword
    arguments go to :class:`HostEmulator` (``properties``, ``clusters``, ``foreign_functions``,
    ``clock`` ...). The emulator runs HTTP filters (``run_request``) and network filters
    (``run_connection``).
    """
    emu = HostEmulator(module, plugin_config=_as_bytes(plugin_config), vm_config=_as_bytes(vm_config),
                       root_id=root_id, **kwargs)
    if start:
        emu.start()
    return emu


def _as_bytes(value: bytes | str | Mapping[str, Any]) -> bytes | str:
    if isinstance(value, Mapping):
        return json.dumps(dict(value))
    return value


@pytest.fixture
def wasm_emulator() -> Any:
    """The :func:`emulator_factory` (also exposed by the meshfilter pytest plugin)."""
    return emulator_factory
