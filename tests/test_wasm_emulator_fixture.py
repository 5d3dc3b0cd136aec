"""The wasm_emulator fixture of the pytest plugin, as a filter author would use it."""

from __future__ import annotations

from typing import Any

from tests.test_wasm_emulator import SDK_LIKE


def test_fixture_builds_and_starts_an_emulator(wasm_emulator: Any) -> None:
    emu = wasm_emulator(SDK_LIKE, plugin_config={"head_tag_name": "route-v"}, root_id="r")
    assert emu.configured is True
    assert emu.logs_at("info") == ['{"head_tag_name": "route-v"}']
    assert emu.run_request([("x-tag", "a")]).request_header_values("x-tag") == ["tagged"]


def test_fixture_can_leave_the_vm_unstarted(wasm_emulator: Any) -> None:
    emu = wasm_emulator(SDK_LIKE, start=False)
    assert emu.vm_started is False and emu.configured is None
    assert emu.start() is False  # empty configuration is refused by this module


def test_fixture_runs_a_network_filter(wasm_emulator: Any) -> None:
    from tests.wasm_modules import TCP_FILTER

    emu = wasm_emulator(TCP_FILTER)
    result = emu.run_connection([b"a", b"b"], [b"c"], close="none")
    assert result.downstream_data == b"to-upstream:ato-upstream:b"
    assert result.upstream_data == b"to-client:c"
