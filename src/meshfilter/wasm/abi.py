"""The proxy-wasm ABI as data: versions, enums, status codes, host functions and callbacks.

One module shared by the code generators (:mod:`meshfilter.wasm.codegen` and everything built on
it) and the host emulator, so that both speak the same ABI. Pure data and small lookups; no
wasmtime.

Source of truth: proxy-wasm-cpp-host, the host Envoy embeds (``include/proxy-wasm/exports.h`` for
the host functions and their C types, ``include/proxy-wasm/wasm.h`` for the module's callbacks,
``src/wasm.cc`` for which host functions each ABI version registers and the allow-list of host calls
while the VM starts), and the enums of proxy-wasm-cpp-sdk's ``proxy_wasm_enums.h`` and
``proxy_wasm_common.h``. Facts only, written out here as data.

Signatures use one letter per Wasm value type: ``i`` i32, ``I`` i64, ``f`` f32, ``F`` f64. cpp-host's
``Word`` is an i32 on wasm32; its ``int64_t``/``uint64_t`` parameters are i64.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "ABI_VERSIONS", "ALLOC_ALLOWED", "DEFAULT_ABI", "Action", "BufferType", "CALLBACKS", "Callback", "DataAction",
    "ENV_HOST_FUNCTIONS", "FilterStatus", "HostFunction", "LogLevel", "MapType", "MetricType", "PeerType",
    "START_ALLOWED", "Signature", "Status", "StreamType", "TrailersAction", "WASI_FUNCTIONS", "WASI_MODULES",
    "WasiErrno", "abi_family", "abi_from_marker", "abi_marker", "abi_of_exports", "allocator_exports",
    "callback_signature", "host_functions", "looked_up_callbacks",
]

# Newest first: the order codegen offers them in. Envoy 1.40 loads all three.
ABI_VERSIONS: tuple[str, ...] = ("0.2.1", "0.2.0", "0.1.0")
DEFAULT_ABI = "0.2.1"
_KINDS = {"i": "i32", "I": "i64", "f": "f32", "F": "f64"}


@dataclass(frozen=True)
class Signature:
    """A function signature as kind letters: params like ``"iiI"``, results like ``"i"`` or ``""``."""

    params: str
    results: str

    def __str__(self) -> str:
        """cpp-host's spelling, as in its "Bad function signature" error: ``i32 i32 -> i32``."""
        args = " ".join(_KINDS[k] for k in self.params) or "void"
        res = " ".join(_KINDS[k] for k in self.results) or "void"
        return f"{args} -> {res}"

    def wat(self, names: str | None = "abcdefghijklmnop") -> str:
        """The WAT ``(param $a i32) ... (result i32)`` text, parameters named ``$a``, ``$b``, ...
        (unnamed with ``names=None``, as in an import)."""
        out = [f"(param ${names[i]} {_KINDS[k]})" if names else f"(param {_KINDS[k]})"
               for i, k in enumerate(self.params)]
        out += [f"(result {_KINDS[k]})" for k in self.results]
        return " ".join(out)


def _sig(params: str, results: str = "i") -> Signature:
    return Signature(params, results)


def abi_marker(abi: str) -> str:
    """The export that declares a module's ABI: ``proxy_abi_version_0_2_1``."""
    return "proxy_abi_version_" + abi.replace(".", "_")


def abi_from_marker(export_name: str) -> str | None:
    """The ABI an export name declares, or None when it is not a (known) ABI marker."""
    for abi in ABI_VERSIONS:
        if export_name == abi_marker(abi):
            return abi
    return None


def abi_family(abi: str) -> str:
    """``"0.1"`` or ``"0.2"``: the callback signatures differ between the two families."""
    return "0.1" if abi == "0.1.0" else "0.2"


def allocator_exports(abi: str | None = None) -> tuple[str, ...]:
    """The exports the host tries, in order, to allocate guest memory (cpp-host: ``malloc``, then
    ``proxy_on_memory_allocate``; a module must have one of them). Codegen exports the first name
    that its ABI's SDKs used: ``malloc`` for 0.1.0, ``proxy_on_memory_allocate`` for 0.2.x."""
    if abi is None:
        return ("malloc", "proxy_on_memory_allocate")
    return ("malloc",) if abi == "0.1.0" else ("proxy_on_memory_allocate",)


# -- enums ---------------------------------------------------------------------------------------

class Status(IntEnum):
    """``WasmResult`` (proxy_status_t): what a host function returns."""

    OK = 0
    NOT_FOUND = 1
    BAD_ARGUMENT = 2
    SERIALIZATION_FAILURE = 3
    PARSE_FAILURE = 4
    BAD_EXPRESSION = 5
    INVALID_MEMORY_ACCESS = 6
    EMPTY = 7
    CAS_MISMATCH = 8
    RESULT_MISMATCH = 9
    INTERNAL_FAILURE = 10
    BROKEN_CONNECTION = 11
    UNIMPLEMENTED = 12


class Action(IntEnum):
    """What a headers callback returns (``FilterHeadersStatus``). ABI 0.2.x SDKs return only CONTINUE
    and PAUSE (StopIteration); 0.1.0 modules may return the other three."""

    CONTINUE = 0
    PAUSE = 1
    CONTINUE_AND_END_STREAM = 2
    STOP_ALL_ITERATION_AND_BUFFER = 3
    STOP_ALL_ITERATION_AND_WATERMARK = 4


class DataAction(IntEnum):
    """What a body callback returns (``FilterDataStatus``)."""

    CONTINUE = 0
    STOP_ITERATION_AND_BUFFER = 1
    STOP_ITERATION_AND_WATERMARK = 2
    STOP_ITERATION_NO_BUFFER = 3


class TrailersAction(IntEnum):
    """What a trailers or metadata callback returns (``FilterTrailersStatus``)."""

    CONTINUE = 0
    STOP_ITERATION = 1


class FilterStatus(IntEnum):
    """What a network (TCP) callback returns: ``proxy_on_new_connection``, ``_downstream_data``,
    ``_upstream_data``."""

    CONTINUE = 0
    STOP_ITERATION = 1


class LogLevel(IntEnum):
    """``proxy_log`` levels (the same numbers in ABI 0.1.0 and 0.2.x)."""

    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4
    CRITICAL = 5


class MapType(IntEnum):
    """``WasmHeaderMapType``: the header maps a module can read and write."""

    REQUEST_HEADERS = 0
    REQUEST_TRAILERS = 1
    RESPONSE_HEADERS = 2
    RESPONSE_TRAILERS = 3
    GRPC_RECEIVE_INITIAL_METADATA = 4
    GRPC_RECEIVE_TRAILING_METADATA = 5
    HTTP_CALL_RESPONSE_HEADERS = 6
    HTTP_CALL_RESPONSE_TRAILERS = 7


class BufferType(IntEnum):
    """``WasmBufferType``: the byte buffers a module can read (and some write)."""

    HTTP_REQUEST_BODY = 0
    HTTP_RESPONSE_BODY = 1
    NETWORK_DOWNSTREAM_DATA = 2
    NETWORK_UPSTREAM_DATA = 3
    HTTP_CALL_RESPONSE_BODY = 4
    GRPC_RECEIVE_BUFFER = 5
    VM_CONFIGURATION = 6
    PLUGIN_CONFIGURATION = 7
    CALL_DATA = 8  # a foreign function's arguments


class StreamType(IntEnum):
    """``WasmStreamType``: ``proxy_continue_stream`` / ``proxy_close_stream`` (ABI 0.2.x)."""

    REQUEST = 0
    RESPONSE = 1
    DOWNSTREAM = 2
    UPSTREAM = 3


class MetricType(IntEnum):
    COUNTER = 0
    GAUGE = 1
    HISTOGRAM = 2


class PeerType(IntEnum):
    """Who closed a TCP connection (``proxy_on_downstream_connection_close`` and upstream)."""

    UNKNOWN = 0
    LOCAL = 1
    REMOTE = 2


class WasiErrno(IntEnum):
    """The WASI errno values the host functions return (a subset)."""

    SUCCESS = 0
    BADF = 8
    NOTDIR = 20
    FAULT = 21
    INVAL = 28
    NOENT = 44
    NOSYS = 52
    NOTSUP = 58
    NOTCAPABLE = 76


# -- host functions (imports of the module) --------------------------------------------------------

@dataclass(frozen=True)
class HostFunction:
    """A host function as cpp-host registers it: module, name, signature, and the ABIs that have it."""

    module: str
    name: str
    signature: Signature
    abis: tuple[str, ...] = ABI_VERSIONS

    @property
    def key(self) -> str:
        """``module.name``, the spelling of cpp-host's allow-lists."""
        return f"{self.module}.{self.name}"


def _env(name: str, params: str, results: str = "i", abis: tuple[str, ...] = ABI_VERSIONS) -> HostFunction:
    return HostFunction("env", name, Signature(params, results), abis)


# FOR_ALL_HOST_FUNCTIONS (every ABI), then FOR_ALL_HOST_FUNCTIONS_ABI_SPECIFIC as wasm.cc registers
# them, then the two emscripten helpers registered unconditionally.
ENV_HOST_FUNCTIONS: tuple[HostFunction, ...] = (
    _env("proxy_log", "iii"),
    _env("proxy_get_status", "iii"),
    _env("proxy_set_property", "iiii"),
    _env("proxy_get_property", "iiii"),
    _env("proxy_send_local_response", "iiiiiiii"),
    _env("proxy_get_shared_data", "iiiii"),
    _env("proxy_set_shared_data", "iiiii"),
    _env("proxy_register_shared_queue", "iii"),
    _env("proxy_resolve_shared_queue", "iiiii"),
    _env("proxy_dequeue_shared_queue", "iii"),
    _env("proxy_enqueue_shared_queue", "iii"),
    _env("proxy_get_header_map_value", "iiiii"),
    _env("proxy_add_header_map_value", "iiiii"),
    _env("proxy_replace_header_map_value", "iiiii"),
    _env("proxy_remove_header_map_value", "iii"),
    _env("proxy_get_header_map_pairs", "iii"),
    _env("proxy_set_header_map_pairs", "iii"),
    _env("proxy_get_header_map_size", "ii"),
    _env("proxy_get_buffer_status", "iii"),
    _env("proxy_get_buffer_bytes", "iiiii"),
    _env("proxy_set_buffer_bytes", "iiiii"),
    _env("proxy_http_call", "iiiiiiiiii"),
    _env("proxy_grpc_call", "iiiiiiiiiiii"),
    _env("proxy_grpc_stream", "iiiiiiiii"),
    _env("proxy_grpc_close", "i"),
    _env("proxy_grpc_cancel", "i"),
    _env("proxy_grpc_send", "iiii"),
    _env("proxy_set_tick_period_milliseconds", "i"),
    _env("proxy_get_current_time_nanoseconds", "i"),
    _env("proxy_define_metric", "iiii"),
    _env("proxy_increment_metric", "iI"),
    _env("proxy_record_metric", "iI"),
    _env("proxy_get_metric", "ii"),
    _env("proxy_set_effective_context", "i"),
    _env("proxy_done", ""),
    _env("proxy_call_foreign_function", "iiiiii"),
    # ABI specific
    _env("proxy_get_configuration", "ii", abis=("0.1.0",)),
    _env("proxy_continue_request", "", abis=("0.1.0",)),
    _env("proxy_continue_response", "", abis=("0.1.0",)),
    _env("proxy_clear_route_cache", "", abis=("0.1.0",)),
    _env("proxy_continue_stream", "i", abis=("0.2.0", "0.2.1")),
    _env("proxy_close_stream", "i", abis=("0.2.0", "0.2.1")),
    _env("proxy_get_log_level", "i", abis=("0.2.1",)),
    # emscripten runtime helpers
    _env("pthread_equal", "ii"),
    _env("emscripten_notify_memory_growth", "i", ""),
)

# FOR_ALL_WASI_FUNCTIONS with exports.h's C types; registered under both module names.
WASI_MODULES: tuple[str, ...] = ("wasi_snapshot_preview1", "wasi_unstable")
WASI_FUNCTIONS: dict[str, Signature] = {
    "fd_write": _sig("iiii"),
    "fd_read": _sig("iiii"),
    "fd_seek": _sig("iIii"),
    "fd_close": _sig("i"),
    "fd_fdstat_get": _sig("ii"),
    "fd_fdstat_set_flags": _sig("ii"),
    "fd_fdstat_set_rights": _sig("iII"),
    "environ_get": _sig("ii"),
    "environ_sizes_get": _sig("ii"),
    "args_get": _sig("ii"),
    "args_sizes_get": _sig("ii"),
    "clock_time_get": _sig("iIi"),
    "clock_res_get": _sig("ii"),
    "fd_advise": _sig("iIIi"),
    "fd_allocate": _sig("iII"),
    "fd_datasync": _sig("i"),
    "fd_filestat_set_size": _sig("iI"),
    "fd_filestat_set_times": _sig("iIIi"),
    "fd_pread": _sig("iiiIi"),
    "fd_pwrite": _sig("iiiIi"),
    "fd_readdir": _sig("iiiIi"),
    "fd_renumber": _sig("ii"),
    "fd_sync": _sig("i"),
    "fd_tell": _sig("ii"),
    "path_create_directory": _sig("iii"),
    "path_filestat_set_times": _sig("iiiiIIi"),
    "path_link": _sig("iiiiii"),
    "path_readlink": _sig("iiiiii"),
    "path_remove_directory": _sig("iii"),
    "path_rename": _sig("iiiiii"),
    "path_symlink": _sig("iiii"),
    "path_unlink_file": _sig("iii"),
    "sock_accept": _sig("iii"),
    "sock_recv": _sig("iiiiii"),
    "sock_send": _sig("iiiii"),
    "sock_shutdown": _sig("ii"),
    "random_get": _sig("ii"),
    "sched_yield": _sig(""),
    "poll_oneoff": _sig("iiii"),
    "proc_exit": _sig("i", ""),
    "path_open": _sig("iiiiiIIii"),
    "fd_prestat_get": _sig("ii"),
    "fd_prestat_dir_name": _sig("iii"),
    "path_filestat_get": _sig("iiiii"),
    "fd_filestat_get": _sig("ii"),
}


def host_functions(abi: str) -> dict[tuple[str, str], HostFunction]:
    """Every host function cpp-host registers for a module of this ABI, by ``(module, name)``."""
    out = {(f.module, f.name): f for f in ENV_HOST_FUNCTIONS if abi in f.abis}
    for module in WASI_MODULES:
        for name, sig in WASI_FUNCTIONS.items():
            out[(module, name)] = HostFunction(module, name, sig)
    return out


# The host calls allowed while the VM starts (``_initialize``, then ``main`` or ``__main_void``, or
# ``_start``): cpp-host's WasmBase::startVm. Any other host call then fails with "restricted_callback".
_START_WASI = (
    "fd_write", "args_sizes_get", "args_get", "environ_sizes_get", "environ_get", "clock_time_get",
    "clock_res_get", "random_get", "poll_oneoff", "fd_fdstat_get", "fd_fdstat_set_flags",
    "fd_advise", "fd_allocate", "fd_datasync", "fd_fdstat_set_rights", "fd_filestat_get",
    "fd_filestat_set_size", "fd_filestat_set_times", "fd_pread", "fd_prestat_dir_name", "fd_prestat_get",
    "fd_pwrite", "fd_readdir", "fd_renumber", "fd_sync", "fd_tell", "path_create_directory",
    "path_filestat_get", "path_filestat_set_times", "path_link", "path_readlink", "path_remove_directory",
    "path_rename", "path_symlink", "path_unlink_file", "sock_accept", "sock_recv", "sock_send",
    "sock_shutdown",
)
START_ALLOWED: frozenset[str] = frozenset(
    ["env.emscripten_notify_memory_growth", "env.proxy_log"]
    + [f"{m}.{n}" for m in WASI_MODULES for n in _START_WASI])

# The host calls allowed inside the module's allocator (cpp-host: WasmBase::allocMemory).
ALLOC_ALLOWED: frozenset[str] = frozenset(
    ["env.proxy_log"] + [f"{m}.{n}" for m in WASI_MODULES for n in ("fd_write", "clock_time_get", "poll_oneoff")])


# -- callbacks (exports of the module) --------------------------------------------------------------

@dataclass(frozen=True)
class Callback:
    """A module export the host calls; ``signatures`` by ABI family (``"0.1"``, ``"0.2"``)."""

    name: str
    signatures: dict[str, Signature]

    def signature(self, abi: str) -> Signature | None:
        """The signature cpp-host looks the export up with, or None when this ABI has no such callback."""
        return self.signatures.get(abi_family(abi))


def _cb(name: str, params: str, results: str = "i", *, v01: str | None = "same") -> Callback:
    sig = Signature(params, results)
    sigs = {"0.2": sig}
    if v01 == "same":
        sigs["0.1"] = sig
    elif v01 is not None:
        sigs["0.1"] = Signature(v01, results)
    return Callback(name, sigs)


# include/proxy-wasm/wasm.h: WasmCallVoid<N> is N i32 params -> nothing, WasmCallWord<N> -> i32.
CALLBACKS: dict[str, Callback] = {cb.name: cb for cb in (
    _cb("_initialize", "", ""),
    _cb("_start", "", ""),
    _cb("main", "ii"),
    _cb("__main_void", ""),
    _cb("malloc", "i"),
    _cb("proxy_on_memory_allocate", "i"),
    _cb("proxy_validate_configuration", "ii"),
    _cb("proxy_on_vm_start", "ii"),
    _cb("proxy_on_configure", "ii"),
    _cb("proxy_on_tick", "i", ""),
    _cb("proxy_on_context_create", "ii", ""),
    _cb("proxy_on_new_connection", "i"),
    _cb("proxy_on_downstream_data", "iii"),
    _cb("proxy_on_upstream_data", "iii"),
    _cb("proxy_on_downstream_connection_close", "ii", ""),
    _cb("proxy_on_upstream_connection_close", "ii", ""),
    _cb("proxy_on_request_headers", "iii", v01="ii"),
    _cb("proxy_on_request_body", "iii"),
    _cb("proxy_on_request_trailers", "ii"),
    _cb("proxy_on_request_metadata", "ii"),
    _cb("proxy_on_response_headers", "iii", v01="ii"),
    _cb("proxy_on_response_body", "iii"),
    _cb("proxy_on_response_trailers", "ii"),
    _cb("proxy_on_response_metadata", "ii"),
    _cb("proxy_on_http_call_response", "iiiii", ""),
    _cb("proxy_on_grpc_receive", "iii", ""),
    _cb("proxy_on_grpc_close", "iii", ""),
    _cb("proxy_on_grpc_create_initial_metadata", "iii", ""),
    _cb("proxy_on_grpc_receive_initial_metadata", "iii", ""),
    _cb("proxy_on_grpc_receive_trailing_metadata", "iii", ""),
    _cb("proxy_on_queue_ready", "ii", ""),
    _cb("proxy_on_foreign_function", "iii", "", v01=None),
    _cb("proxy_on_done", "i"),
    _cb("proxy_on_log", "i", ""),
    _cb("proxy_on_delete", "i", ""),
)}


def callback_signature(name: str, abi: str) -> Signature | None:
    """The signature the host expects for export ``name`` in this ABI; None when it is not a callback
    of that ABI (the host ignores such an export)."""
    cb = CALLBACKS.get(name)
    return cb.signature(abi) if cb else None


# -- what the host looks up (cpp-host WasmBase::getFunctions) ---------------------------------------

# FOR_ALL_MODULE_FUNCTIONS, in cpp-host's order. cpp-host never looks up
# ``proxy_on_grpc_create_initial_metadata`` (so its signature is not checked), and
# ``proxy_on_foreign_function`` only for ABI 0.2.x.
_MODULE_FUNCTIONS: tuple[str, ...] = (
    "proxy_validate_configuration", "proxy_on_vm_start", "proxy_on_configure", "proxy_on_tick",
    "proxy_on_context_create", "proxy_on_new_connection", "proxy_on_downstream_data",
    "proxy_on_upstream_data", "proxy_on_downstream_connection_close", "proxy_on_upstream_connection_close",
    "proxy_on_request_body", "proxy_on_request_trailers", "proxy_on_request_metadata",
    "proxy_on_response_body", "proxy_on_response_trailers", "proxy_on_response_metadata",
    "proxy_on_http_call_response", "proxy_on_grpc_receive", "proxy_on_grpc_close",
    "proxy_on_grpc_receive_initial_metadata", "proxy_on_grpc_receive_trailing_metadata",
    "proxy_on_queue_ready", "proxy_on_done", "proxy_on_log", "proxy_on_delete",
)


def looked_up_callbacks(abi: str, exports: frozenset[str] | set[str]) -> tuple[str, ...]:
    """The exports cpp-host looks up (and so checks the signature of), in its order, for a module of
    ``abi`` exporting the function names ``exports``: ``_initialize`` and then ``main`` and
    ``__main_void`` (a WASI reactor), or ``_start`` (a command); ``malloc``, or
    ``proxy_on_memory_allocate`` when there is no ``malloc``; then the module functions of the ABI.
    Names the module does not export are left out."""
    out: list[str] = []
    if "_initialize" in exports:
        out += ["_initialize", "main", "__main_void"]
    else:
        out.append("_start")
    out.append("malloc" if "malloc" in exports else "proxy_on_memory_allocate")
    out += _MODULE_FUNCTIONS
    out += ["proxy_on_request_headers", "proxy_on_response_headers"]
    if abi_family(abi) == "0.2":
        out.append("proxy_on_foreign_function")
    return tuple(n for n in out if n in exports)


def abi_of_exports(export_names: list[str] | tuple[str, ...]) -> str | None:
    """The ABI a module declares: the first ``proxy_abi_version_*`` function export in export order
    (cpp-host's BytecodeUtil::getAbiVersion); None when there is none."""
    for name in export_names:
        abi = abi_from_marker(name)
        if abi is not None:
            return abi
    return None
