"""Host functions: metrics (Envoy's Context::defineMetric and friends; ids carry the type in 2 bits)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meshfilter.wasm.emulator._records import Metric
from meshfilter.wasm.emulator._state import GuestMemory, HostState

OK, NOT_FOUND, BAD_ARGUMENT = 0, 1, 2
COUNTER, GAUGE, HISTOGRAM = 0, 1, 2


class Metrics:
    def __init__(self, state: HostState, mem: GuestMemory) -> None:
        self.state = state
        self.mem = mem

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {"proxy_define_metric": self.define_metric, "proxy_increment_metric": self.increment_metric,
                "proxy_record_metric": self.record_metric, "proxy_get_metric": self.get_metric}

    def define_metric(self, mtype: int, np: int, ns: int, ret: int) -> int:
        name = self.mem.read(np, ns).decode("utf-8", "replace")
        if mtype > HISTOGRAM:
            return BAD_ARGUMENT
        st = self.state
        st.next_metric_id[mtype] += 4
        mid = st.next_metric_id[mtype]
        st.metric_ids[mid] = name
        if name not in st.metrics:
            st.metrics[name] = Metric(mtype, name, 0)
        self.mem.write_u32(ret, mid)
        return OK

    def _metric(self, mid: int) -> Metric | None:
        name = self.state.metric_ids.get(mid)
        return self.state.metrics.get(name) if name is not None else None

    def increment_metric(self, mid: int, offset: int) -> int:
        mtype = mid & 3
        if mtype == HISTOGRAM or mtype == 3:
            return BAD_ARGUMENT
        m = self._metric(mid)
        if m is None:
            return NOT_FOUND
        if mtype == COUNTER and offset <= 0:
            return BAD_ARGUMENT
        self._set(m, m.value + offset)
        return OK

    def record_metric(self, mid: int, value: int) -> int:
        m = self._metric(mid)
        if m is None:
            return NOT_FOUND
        value &= 0xFFFFFFFFFFFFFFFF
        if m.type == COUNTER:
            self._set(m, m.value + value)
        elif m.type == GAUGE:
            self._set(m, value)
        else:
            self.state.metrics[m.name] = Metric(m.type, m.name, value, (*m.samples, value))
        return OK

    def get_metric(self, mid: int, ret: int) -> int:
        if mid & 3 not in (COUNTER, GAUGE):
            return BAD_ARGUMENT
        m = self._metric(mid)
        if m is None:
            return NOT_FOUND
        self.mem.write_u64(ret, m.value)
        return OK

    def _set(self, m: Metric, value: int) -> None:
        self.state.metrics[m.name] = Metric(m.type, m.name, value, m.samples)
