"""Host functions: shared data and shared queues (cpp-host's SharedData and SharedQueue).

One emulator is one VM, so "shared" is per emulator (Envoy shares by vm_id across the plugins and
worker threads of a process). Enqueueing fires ``proxy_on_queue_ready`` on the root context that
registered the queue, after the current callback returns (Envoy posts it to that thread).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meshfilter.wasm.emulator._state import GuestMemory, HostState

OK, NOT_FOUND, EMPTY, CAS_MISMATCH = 0, 1, 7, 8


class SharedDataAndQueues:
    def __init__(self, state: HostState, mem: GuestMemory, queue_ready: Callable[[int, int], None]) -> None:
        self.state = state
        self.mem = mem
        self.queue_ready = queue_ready  # (root context id, token) -> calls proxy_on_queue_ready

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "proxy_get_shared_data": self.get_shared_data,
            "proxy_set_shared_data": self.set_shared_data,
            "proxy_register_shared_queue": self.register_shared_queue,
            "proxy_resolve_shared_queue": self.resolve_shared_queue,
            "proxy_enqueue_shared_queue": self.enqueue_shared_queue,
            "proxy_dequeue_shared_queue": self.dequeue_shared_queue,
        }

    def _next_cas(self) -> int:
        cas = self.state.next_cas
        self.state.next_cas = (cas + 1) & 0xFFFFFFFF or 1
        return cas

    def set_shared_data(self, kp: int, ks: int, vp: int, vs: int, cas: int) -> int:
        key, value = self.mem.read(kp, ks), self.mem.read(vp, vs)
        old = self.state.shared_data.get(key)
        if old is not None and cas and cas != old[1]:
            return CAS_MISMATCH
        self.state.shared_data[key] = (value, self._next_cas())
        return OK

    def get_shared_data(self, kp: int, ks: int, rp: int, rs: int, cas_ptr: int) -> int:
        entry = self.state.shared_data.get(self.mem.read(kp, ks))
        if entry is None:
            return NOT_FOUND
        self.mem.copy_out(entry[0], rp, rs)
        self.mem.write_u32(cas_ptr, entry[1])
        return OK

    def register_shared_queue(self, np: int, ns: int, ret: int) -> int:
        st = self.state
        key = (st.vm_id, self.mem.read(np, ns).decode("utf-8", "replace"))
        token = st.queue_names.get(key)
        if token is None:
            token = st.queue_names[key] = len(st.queue_names) + 1
            st.queues[token] = []
        st.queue_owner[token] = st.root_context_id()
        self.mem.write_u32(ret, token)
        return OK

    def resolve_shared_queue(self, vp: int, vs: int, np: int, ns: int, ret: int) -> int:
        vm_id = self.mem.read(vp, vs).decode("utf-8", "replace") or self.state.vm_id
        token = self.state.queue_names.get((vm_id, self.mem.read(np, ns).decode("utf-8", "replace")))
        if token is None:
            return NOT_FOUND
        self.mem.write_u32(ret, token)
        return OK

    def enqueue_shared_queue(self, token: int, vp: int, vs: int) -> int:
        data = self.mem.read(vp, vs)
        q = self.state.queues.get(token)
        if q is None:
            return NOT_FOUND
        q.append(data)
        owner = self.state.queue_owner.get(token, 0)
        if owner:
            self.state.defer(lambda: self.queue_ready(owner, token))
        return OK

    def dequeue_shared_queue(self, token: int, rp: int, rs: int) -> int:
        q = self.state.queues.get(token)
        if q is None:
            return NOT_FOUND
        if not q:
            return EMPTY
        return self.mem.copy_out(q.pop(0), rp, rs)
