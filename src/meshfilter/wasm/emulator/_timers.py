"""Host functions: the tick timer and the clock. The test drives time: ``HostEmulator.tick()`` or
``advance(ms)`` (which fires every tick due on the virtual clock)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meshfilter.wasm.emulator._state import GuestMemory, HostState

OK = 0


class Timers:
    def __init__(self, state: HostState, mem: GuestMemory) -> None:
        self.state = state
        self.mem = mem

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {"proxy_set_tick_period_milliseconds": self.set_tick_period_milliseconds,
                "proxy_get_current_time_nanoseconds": self.get_current_time_nanoseconds}

    def set_tick_period_milliseconds(self, period: int) -> int:
        st = self.state
        st.tick_period_ms = period
        st.next_tick_ms = st.time_offset_ns // 1_000_000 + period if period else 0
        return OK

    def get_current_time_nanoseconds(self, ret: int) -> int:
        self.mem.write_u64(ret, self.state.now_ns())
        return OK
