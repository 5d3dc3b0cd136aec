"""A proxy-wasm host emulator on wasmtime: run a filter module the way Envoy 1.40 does, in-process.

It runs modules built for proxy-wasm ABI 0.1.0, 0.2.0 and 0.2.1 by any SDK (Rust, Go/TinyGo, C++,
AssemblyScript) or by meshfilter, and refuses, with Envoy's words, the modules Envoy refuses::

    emu = HostEmulator(module_bytes, root_id="propaganda_filter_root",
                       plugin_config=b'{"head_tag_name": "route-v", "head_tag_value": "hello2v2"}')
    assert emu.start()                       # VM start, root context, on_vm_start, on_configure
    result = emu.run_request([(":path", "/"), ("route-v", "old")], response_headers=[(":status", "200")])
    result.request_headers                   # [(":path", "/"), ("route-v", "hello2v2")]
    emu.logs_at("error"), emu.foreign_calls, emu.local_responses, emu.http_calls, emu.metrics

The package is split like proxy-wasm-go-sdk's proxytest: this public API (:class:`HostEmulator`,
:class:`HttpContext`, :class:`TcpContext`, the records), and a private ABI side: ``_runtime`` (the VM,
start restrictions, traps), ``_contexts`` (what Envoy does around each callback) and one module per
area of host functions: ``_headers`` (header maps and buffers), ``_properties``, ``_shared`` (shared
data and queues), ``_timers``, ``_callouts`` (HTTP and gRPC calls), ``_metrics``, ``_wasi`` and
``_general`` (logs, status, contexts, foreign functions, stream control). The host table and every
signature come from :mod:`meshfilter.wasm.abi`. See docs/wasm-emulator.md.
"""

from meshfilter.wasm import abi as _abi
from meshfilter.wasm.abi import Action, DataAction, FilterStatus, PeerType, Status, TrailersAction
from meshfilter.wasm.emulator._callouts import grpc_service
from meshfilter.wasm.emulator._contexts import HttpContext, TcpContext
from meshfilter.wasm.emulator._host import HostEmulator
from meshfilter.wasm.emulator._module import (
    ModuleCheck,
    Problem,
    check_module,
    detect_abi,
    function_names,
    load_module_bytes,
)
from meshfilter.wasm.emulator._properties import serialize as serialize_property
from meshfilter.wasm.emulator._records import (
    LEVELS,
    ConnectionResult,
    ForeignCall,
    Frame,
    GrpcCall,
    HttpCall,
    LocalResponse,
    LogRecord,
    Metric,
    RequestResult,
)

ABI_VERSIONS = tuple(sorted(_abi.ABI_VERSIONS))  # oldest first

__all__ = [
    "ABI_VERSIONS", "LEVELS", "Action", "ConnectionResult", "DataAction", "FilterStatus", "ForeignCall", "Frame",
    "GrpcCall", "HostEmulator", "HttpCall", "HttpContext", "LocalResponse", "LogRecord", "Metric", "ModuleCheck",
    "PeerType", "Problem", "RequestResult", "Status", "TcpContext", "TrailersAction", "check_module",
    "detect_abi", "function_names", "grpc_service", "load_module_bytes", "serialize_property",
]
