"""The host's state shared by the host-function areas, and guest memory access (private).

:class:`HostState` holds everything a host function may read or change: the plugin, the contexts,
the effective context, and the records. :class:`GuestMemory` reads and writes linear memory and
returns data to the module through its allocator. Both have only public members: the areas
(``_headers``, ``_properties``, ...) use them and nothing else.
"""

from __future__ import annotations

import ctypes
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from meshfilter.wasm.emulator._records import (
    LEVELS,
    ForeignCall,
    GrpcCall,
    HeadersIn,
    HttpCall,
    LocalResponse,
    LogRecord,
    Metric,
)

if TYPE_CHECKING:
    from meshfilter.wasm.emulator._contexts import RootContext

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class Fault(Exception):
    """A guest pointer/size outside linear memory (the host function answers InvalidMemoryAccess)."""


def decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def encode(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def normalize(headers: HeadersIn) -> list[tuple[bytes, bytes]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [((k if isinstance(k, bytes) else k.encode("utf-8", "surrogateescape")).lower(),
             v if isinstance(v, bytes) else v.encode("utf-8", "surrogateescape")) for k, v in items]


def prop_key(key: str | tuple[str, ...] | Sequence[str]) -> tuple[str, ...]:
    """A property path from ``"a.b"``, ``"a\\0b"`` or ``("a", "b")``."""
    if isinstance(key, str):
        parts = key.split("\0") if "\0" in key else key.split(".")
        return tuple(p for p in parts if p)
    return tuple(key)


class GuestMemory:
    """Linear memory of the instance; ``alloc`` calls the module's allocator."""

    def __init__(self, bounds: Callable[[], tuple[int, int]], alloc: Callable[[int], int]) -> None:
        self.bounds = bounds  # () -> (base address, size); the runtime sets it once instantiated
        self.alloc = alloc

    def read(self, ptr: int, size: int) -> bytes:
        base, limit = self.bounds()
        if ptr + size > limit:
            raise Fault()
        return ctypes.string_at(base + ptr, size) if size else b""

    def write(self, ptr: int, data: bytes) -> None:
        base, limit = self.bounds()
        if ptr + len(data) > limit:
            raise Fault()
        ctypes.memmove(base + ptr, data, len(data))

    def write_u32(self, ptr: int, value: int) -> None:
        self.write(ptr, _U32.pack(value & 0xFFFFFFFF))

    def write_u64(self, ptr: int, value: int) -> None:
        self.write(ptr, _U64.pack(value & 0xFFFFFFFFFFFFFFFF))

    def read_u32(self, ptr: int) -> int:
        return int(_U32.unpack(self.read(ptr, 4))[0])

    def copy_out(self, data: bytes, ptr_ptr: int, size_ptr: int) -> int:
        """Allocate in the guest, copy ``data``, write (pointer, size) to the return slots; Ok (0)."""
        ptr = 0
        if data:
            ptr = self.alloc(len(data))
            if not ptr:
                raise Fault()
            self.write(ptr, data)
        self.write_u32(ptr_ptr, ptr)
        self.write_u32(size_ptr, len(data))
        return 0


class HostState:
    """Everything host functions share: plugin settings, contexts, records."""

    def __init__(self, *, abi: str, root_id: str, vm_id: str, plugin_name: str, plugin_config: bytes,
                 vm_config: bytes, log_level: str, clock: Callable[[], int] | None,
                 environ: Mapping[str, str], properties: Mapping[str | tuple[str, ...], Any],
                 foreign_functions: Mapping[str, Callable[[bytes], bytes | None]],
                 clusters: Iterable[str]) -> None:
        self.abi = abi
        self.root_id = root_id
        self.vm_id = vm_id
        self.plugin_name = plugin_name
        self.plugin_config = plugin_config
        self.vm_config = vm_config
        self.log_level = log_level
        self.clock = clock or time.time_ns
        self.time_offset_ns = 0
        self.environ = dict(environ)
        # Envoy's plugin_* properties live here, so that a test can change or delete them
        self.properties: dict[tuple[str, ...], Any] = {
            ("plugin_name",): plugin_name, ("plugin_root_id",): root_id, ("plugin_vm_id",): vm_id}
        self.properties.update({prop_key(k): v for k, v in properties.items()})
        self.foreign_functions = dict(foreign_functions)
        self.clusters = set(clusters)
        # the network around the filter (properties): listener, client, upstream
        self.protocol = "HTTP/1.1"
        self.source_address = "127.0.0.1"
        self.destination_address = "127.0.0.1"
        self.destination_port = 10000
        self.upstream_address = "127.0.0.1"
        self.upstream_port = 8080
        self.route_cluster = "upstream"
        # contexts: 0 is the VM context (start functions, allocator), the root context is created at start
        self.contexts: dict[int, Any] = {}  # RootContext, HttpContext or TcpContext
        self.root: RootContext | None = None
        self.effective = 0
        self.next_context_id = 1
        self.next_connection_id = 1
        # records
        self.logs: list[LogRecord] = []
        self.foreign_calls: list[ForeignCall] = []
        self.local_responses: list[LocalResponse] = []
        self.http_calls: list[HttpCall] = []
        self.grpc_calls: list[GrpcCall] = []
        self.host_messages: list[str] = []  # what Envoy itself would log about the module
        # shared state (one VM: "shared" is per emulator)
        self.shared_data: dict[bytes, tuple[bytes, int]] = {}
        self.next_cas = 1
        self.queues: dict[int, list[bytes]] = {}
        self.queue_names: dict[tuple[str, str], int] = {}
        self.queue_owner: dict[int, int] = {}  # token -> root context id (proxy_on_queue_ready)
        self.metrics: dict[str, Metric] = {}
        self.metric_ids: dict[int, str] = {}
        self.next_metric_id = [0, 1, 2]  # counter, gauge, histogram (cpp-host: +4 per define)
        self.tick_period_ms = 0
        self.next_tick_ms = 0
        # the callback in progress: actions Envoy defers until it returns, "stop next iteration"
        self.after_call: list[Callable[[], None]] = []
        self.stop_iteration = False
        # what the callbacks of an answered callout may read
        self.http_response: tuple[list[tuple[bytes, bytes]], bytes, list[tuple[bytes, bytes]]] | None = None
        self.grpc_metadata: list[tuple[bytes, bytes]] | None = None
        self.grpc_buffer: bytes | None = None
        self.status: tuple[int, bytes] = (0, b"")
        self.foreign_args = b""
        self.route_cache_clears = 0

    def now_ns(self) -> int:
        return self.clock() + self.time_offset_ns

    def context(self) -> Any:
        """The effective context (cpp-host's contextOrEffectiveContext), None for the VM context."""
        return self.contexts.get(self.effective)

    def root_context_id(self) -> int:
        return self.root.context_id if self.root is not None else 0

    def log(self, level: int, message: str) -> None:
        rec = LogRecord(LEVELS[level], message, self.effective)
        self.logs.append(rec)
        ctx = self.contexts.get(self.effective)
        if ctx is not None:
            ctx.logs.append(rec)

    def defer(self, action: Callable[[], None]) -> None:
        self.after_call.append(action)
