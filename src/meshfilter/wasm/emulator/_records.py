"""What the emulator records, and the handles a test uses to answer the module's asynchronous calls.

Records are plain data. :class:`HttpCall` and :class:`GrpcCall` also carry the way back into the
module (``respond``, ``receive``, ``close``): a test drives them, as Envoy's cluster would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshfilter.wasm.abi import Action

HeaderList = list[tuple[str, str]]
HeadersIn = Iterable[tuple[str, str]] | Mapping[str, str]
LEVELS = ("trace", "debug", "info", "warn", "error", "critical")


@dataclass(frozen=True)
class LogRecord:
    level: str  # trace, debug, info, warn, error, critical
    message: str
    context_id: int


@dataclass(frozen=True)
class ForeignCall:
    name: str
    arguments: bytes
    context_id: int


@dataclass(frozen=True)
class LocalResponse:
    status_code: int
    details: str
    body: bytes
    headers: HeaderList
    grpc_status: int  # 0xFFFFFFFF when not gRPC (as the SDKs send it)
    context_id: int


@dataclass(frozen=True)
class Frame:
    """One frame of a Wasm backtrace, innermost first (as Envoy prints it)."""

    index: int  # function index (imports included)
    offset: int  # module offset of the instruction
    name: str  # from the name section, or Envoy's ``unknown(function index:N)``

    def __str__(self) -> str:
        return f"{hex(self.offset)} - {self.name}"


@dataclass(frozen=True)
class Metric:
    type: int  # abi.MetricType
    name: str
    value: int
    samples: tuple[int, ...] = ()  # histogram: recorded values


class HttpCall:
    """One ``proxy_http_call``. :meth:`respond` delivers the response to the module
    (``proxy_on_http_call_response``), :meth:`fail` a reset connection, as Envoy's async client does."""

    def __init__(self, token: int, upstream: str, headers: HeaderList, body: bytes, trailers: HeaderList,
                 timeout_ms: int, context_id: int, deliver: Callable[..., None]) -> None:
        self.token = token
        self.upstream = upstream
        self.headers = headers
        self.body = body
        self.trailers = trailers
        self.timeout_ms = timeout_ms
        self.context_id = context_id  # the context that made the call
        self.answered = False
        self._deliver = deliver

    def respond(self, headers: HeadersIn = ((":status", "200"),), body: bytes | str = b"",
                trailers: HeadersIn = ()) -> None:
        """Answer the call: ``proxy_on_http_call_response`` runs on the root context, with the
        headers, body and trailers readable through the buffer and map calls."""
        self._deliver(self, headers, body, trailers, None)

    def fail(self) -> None:
        """The cluster reset the request: the callback sees no headers, and ``proxy_get_status`` answers
        BrokenConnection ("reset")."""
        self._deliver(self, (), b"", (), "reset")

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def __repr__(self) -> str:
        return f"HttpCall(token={self.token}, upstream={self.upstream!r}, headers={self.headers!r})"


class GrpcCall:
    """One ``proxy_grpc_call`` (``stream=False``) or ``proxy_grpc_stream``. The test answers with
    :meth:`respond` (a unary call), or :meth:`receive_initial_metadata`, :meth:`receive`,
    :meth:`receive_trailing_metadata` and :meth:`close` (a stream). ``sent`` is what the module sent
    with ``proxy_grpc_send`` (a stream), ``closed_by_module`` / ``cancelled`` its close and cancel."""

    def __init__(self, token: int, cluster: str, service: str, method: str, initial_metadata: HeaderList,
                 message: bytes, timeout_ms: int, context_id: int, stream: bool,
                 ops: Mapping[str, Callable[..., None]]) -> None:
        self.token = token
        self.cluster = cluster
        self.service = service
        self.method = method
        self.initial_metadata = initial_metadata
        self.message = message
        self.timeout_ms = timeout_ms
        self.context_id = context_id
        self.stream = stream
        self.sent: list[bytes] = []
        self.end_of_stream_sent = False
        self.closed_by_module = False
        self.cancelled = False
        self.closed = False  # by the remote side (close/respond)
        self._ops = ops

    def receive_initial_metadata(self, metadata: HeadersIn) -> None:
        self._ops["initial_metadata"](self, metadata)

    def receive(self, message: bytes) -> None:
        self._ops["message"](self, message)

    def receive_trailing_metadata(self, metadata: HeadersIn) -> None:
        self._ops["trailing_metadata"](self, metadata)

    def close(self, status: int = 0, message: str = "") -> None:
        """The remote end closes: ``proxy_on_grpc_close`` with ``status`` (gRPC code);
        ``proxy_get_status`` answers (status, message)."""
        self._ops["close"](self, status, message)

    def respond(self, message: bytes = b"", *, status: int = 0, status_message: str = "",
                initial_metadata: HeadersIn = (), trailing_metadata: HeadersIn = ()) -> None:
        """A whole unary answer: initial metadata, the message (when status is OK), trailing
        metadata, close."""
        if initial_metadata:
            self.receive_initial_metadata(initial_metadata)
        if status == 0:
            self.receive(message)
        if trailing_metadata:
            self.receive_trailing_metadata(trailing_metadata)
        self.close(status, status_message)

    def __repr__(self) -> str:
        kind = "stream" if self.stream else "call"
        return f"GrpcCall({kind}, token={self.token}, {self.service}/{self.method})"


@dataclass
class RequestResult:
    """What one request did, from :meth:`HostEmulator.run_request`."""

    request_action: Action
    request_headers: HeaderList
    response_action: Action | None
    response_headers: HeaderList | None
    local_response: LocalResponse | None
    logs: list[LogRecord]
    foreign_calls: list[ForeignCall]
    route_cache_clears: int
    request_body: bytes = b""
    request_trailers: HeaderList = field(default_factory=list)
    response_body: bytes | None = None
    response_trailers: HeaderList = field(default_factory=list)
    http_calls: list[HttpCall] = field(default_factory=list)
    grpc_calls: list[GrpcCall] = field(default_factory=list)
    paused: bool = False  # the request never reached the upstream (paused, not continued)
    reached_upstream: bool = True
    context_id: int = 0

    def request_header(self, name: str) -> str | None:
        return first(self.request_headers, name)

    def request_header_values(self, name: str) -> list[str]:
        return values(self.request_headers, name)

    def response_header(self, name: str) -> str | None:
        return first(self.response_headers or [], name)


@dataclass
class ConnectionResult:
    """What one TCP connection did, from :meth:`HostEmulator.run_connection`."""

    new_connection: int  # abi.FilterStatus
    downstream: list[int]  # status per downstream chunk
    upstream: list[int]
    downstream_data: bytes  # what went on to the upstream (after the filter)
    upstream_data: bytes  # what went back to the client
    logs: list[LogRecord]
    closed: list[int]  # abi.StreamType the module closed
    context_id: int = 0


def first(headers: HeaderList, name: str) -> str | None:
    name = name.lower()
    return next((v for k, v in headers if k == name), None)


def values(headers: HeaderList, name: str) -> list[str]:
    name = name.lower()
    return [v for k, v in headers if k == name]


def as_json(obj: Any) -> Any:
    """Records as JSON-ready data (for ``wasm run --json``)."""
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, list | tuple):
        return [as_json(x) for x in obj]
    if isinstance(obj, dict):
        return {k: as_json(v) for k, v in obj.items()}
    return obj
