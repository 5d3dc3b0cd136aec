"""The contexts a test drives: the root context, HTTP streams and TCP connections.

Each event method calls the module's callback the way Envoy 1.40's Context does (decodeHeaders,
encodeData, onData, onEvent ...): which maps and buffers the module may read or change at that point,
what its answer means, and what happens after (a local reply runs through the module's response
callbacks, ``proxy_continue_stream`` resumes the stream). The callbacks themselves go through the
runtime's public :meth:`Runtime.callback`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from meshfilter.wasm.abi import Action, DataAction, FilterStatus, PeerType, TrailersAction
from meshfilter.wasm.emulator._properties import HeaderMapValue
from meshfilter.wasm.emulator._records import (
    ForeignCall,
    GrpcCall,
    HeaderList,
    HeadersIn,
    HttpCall,
    LocalResponse,
    LogRecord,
    first,
)
from meshfilter.wasm.emulator._state import decode, normalize

if TYPE_CHECKING:
    from meshfilter.wasm.emulator._runtime import Runtime

_REQ_H, _REQ_T, _RESP_H, _RESP_T = 0, 1, 2, 3
_REQUEST, _RESPONSE, _DOWNSTREAM, _UPSTREAM = 0, 1, 2, 3
_ACTIONS = tuple(Action)
_GRPC_FROM_HTTP = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}


class RootContext:
    """The plugin's root context (id 1): VM start, configuration, ticks, queues and callouts."""

    def __init__(self, context_id: int) -> None:
        self.context_id = context_id
        self.logs: list[LogRecord] = []
        self.configuring = False
        self.pending_done = False
        self.deleted = False


class _Stream:
    """What HTTP and TCP contexts share."""

    route_cache_clears = 0
    finished = False

    def __init__(self, runtime: Runtime, context_id: int, connection_id: int, source_port: int) -> None:
        self._rt = runtime
        self.context_id = context_id
        self.connection_id = connection_id
        self.source_port = source_port
        self.logs: list[LogRecord] = []
        self.foreign_calls: list[ForeignCall] = []
        self.http_calls: list[HttpCall] = []
        self.grpc_calls: list[GrpcCall] = []
        self.filter_state: dict[tuple[str, ...], bytes] = {}
        self.closed: list[int] = []  # stream types passed to proxy_close_stream
        self.continued: list[int] = []  # stream types passed to proxy_continue_*
        st = runtime.state
        self.start_ns = st.clock() + st.time_offset_ns

    def _connection_view(self) -> dict[str, Any]:
        st = self._rt.state
        return {
            "source": {"address": f"{st.source_address}:{self.source_port}", "port": self.source_port},
            "destination": {"address": f"{st.destination_address}:{st.destination_port}",
                            "port": st.destination_port},
            "connection": {"id": self.connection_id, "mtls": False, "requested_server_name": ""},
            "connection_id": self.connection_id,
            "metadata": b"",
            "filter_state": {},
        }


class HttpContext(_Stream):
    """One HTTP stream (request + response) in the filter."""

    # scalars start as class attributes (a context is made per request: keep that cheap)
    local_response: LocalResponse | None = None
    request_paused = False
    response_paused = False
    request_ended = False  # the request went upstream (or was answered locally)
    response_started = False
    reset = False
    request_body_size = 0
    response_body_size = 0
    response_code: int | None = None
    code_details = ""
    upstream_port = 0
    end_ns: int | None = None

    def __init__(self, runtime: Runtime, context_id: int, connection_id: int, source_port: int) -> None:
        super().__init__(runtime, context_id, connection_id, source_port)
        self.maps: dict[int, list[tuple[bytes, bytes]]] = {_REQ_H: [], _REQ_T: [], _RESP_H: [], _RESP_T: []}
        self.readable: set[int] = set()  # the maps Envoy lets the module read now (getConstMap)
        self.writable: set[int] = set()  # ... and change (getMap)
        self.buffers = {0: b"", 1: b""}

    # -- results -----------------------------------------------------------------------------------

    @property
    def request_header_map(self) -> HeaderList:
        return [(k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
                for k, v in self.maps[_REQ_H]]

    @property
    def response_header_map(self) -> HeaderList:
        return [(k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
                for k, v in self.maps[_RESP_H]]

    @property
    def request_trailer_map(self) -> HeaderList:
        return [(decode(k), decode(v)) for k, v in self.maps[_REQ_T]]

    @property
    def response_trailer_map(self) -> HeaderList:
        return [(decode(k), decode(v)) for k, v in self.maps[_RESP_T]]

    @property
    def request_body_buffer(self) -> bytes:
        return self.buffers[0]

    @property
    def response_body_buffer(self) -> bytes:
        return self.buffers[1]

    def request_header(self, name: str) -> str | None:
        return first(self.request_header_map, name)

    def response_header(self, name: str) -> str | None:
        return first(self.response_header_map, name)

    @property
    def paused(self) -> bool:
        return self.request_paused or self.response_paused

    # -- host -> module events -----------------------------------------------------------------------

    def _headers(self, callback: str, t: int, headers: HeadersIn | None, end_of_stream: bool) -> Action:
        if headers is not None:
            self.maps[t] = normalize(headers)
        self.readable.add(t)
        self.writable.add(t)
        rt = self._rt
        n = len(self.maps[t])
        if rt.abi01:
            r = rt.callback(callback, self.context_id, n)
        else:
            r = rt.callback(callback, self.context_id, n, 1 if end_of_stream else 0)
        action = _ACTIONS[r] if r is not None and r < 5 else rt.action(callback, r)
        if not r and not rt.stopped:
            self.readable.discard(t)  # Envoy lets go of the map when the filter continues
            self.writable.discard(t)
        else:
            self._pause(t)
        return action

    def _pause(self, t: int) -> None:
        if self.local_response is not None or self.reset:
            return
        if t in (_REQ_H, _REQ_T) or t == -1:
            self.request_paused = True
        else:
            self.response_paused = True

    def request_headers(self, headers: HeadersIn, end_of_stream: bool = True) -> Action:
        self.request_ended = False
        return self._headers("proxy_on_request_headers", _REQ_H, headers, end_of_stream)

    def response_headers(self, headers: HeadersIn, end_of_stream: bool = True) -> Action:
        self.response_started = True
        self.request_ended = True
        self.maps[_RESP_H] = normalize(headers)
        status = first(self.response_header_map, ":status")
        if status and status.isdigit():
            self.response_code = int(status)
        if not self.code_details:
            self.code_details = "via_upstream"
        return self._headers("proxy_on_response_headers", _RESP_H, None, end_of_stream)

    def _body(self, callback: str, index: int, body: bytes, end_of_stream: bool) -> DataAction:
        self.buffers[index] = bytes(body)
        if index == 0:
            self.request_body_size += len(body)
        else:
            self.response_body_size += len(body)
        rt = self._rt
        r = rt.callback(callback, self.context_id, len(body), int(end_of_stream))
        value = 0 if r is None else r
        if rt.stopped or value > 3:
            value = int(DataAction.STOP_ITERATION_NO_BUFFER)
        if value:
            self._pause(_REQ_H if index == 0 else _RESP_H)
        return DataAction(value)

    def request_body(self, body: bytes, end_of_stream: bool = True) -> DataAction:
        return self._body("proxy_on_request_body", 0, body, end_of_stream)

    def response_body(self, body: bytes, end_of_stream: bool = True) -> DataAction:
        return self._body("proxy_on_response_body", 1, body, end_of_stream)

    def _trailers(self, callback: str, t: int, trailers: HeadersIn) -> TrailersAction:
        self.maps[t] = normalize(trailers)
        self.readable.add(t)
        self.writable.add(t)
        rt = self._rt
        r = rt.callback(callback, self.context_id, len(self.maps[t]))
        value = 0 if r is None else r
        if rt.stopped or value > 1:
            value = 1
        if value == 0:
            self.readable.discard(t)
            self.writable.discard(t)
        else:
            self._pause(t)
        return TrailersAction(value)

    def request_trailers(self, trailers: HeadersIn) -> TrailersAction:
        return self._trailers("proxy_on_request_trailers", _REQ_T, trailers)

    def response_trailers(self, trailers: HeadersIn) -> TrailersAction:
        return self._trailers("proxy_on_response_trailers", _RESP_T, trailers)

    def done(self) -> None:
        """End the stream as Envoy does: proxy_on_log (the maps readable), then proxy_on_done and
        proxy_on_delete (the stream is destroyed)."""
        if self.finished:
            return
        self.finished = True
        self.end_ns = self._rt.state.now_ns()
        self.readable = {_REQ_H, _RESP_H, _RESP_T}
        self.writable = set()
        rt = self._rt
        rt.callback("proxy_on_log", self.context_id)
        rt.callback("proxy_on_done", self.context_id)
        rt.callback("proxy_on_delete", self.context_id)
        rt.forget(self.context_id)

    # -- module -> host (called by the host functions, through the runtime) ---------------------------

    def resume(self, stream: int) -> None:
        self.continued.append(stream)
        if stream == _REQUEST:
            self.request_paused = False
        else:
            self.response_paused = False
        # Envoy's continueStream lets go of the request maps
        for t in (_REQ_H, _REQ_T):
            self.readable.discard(t)
            self.writable.discard(t)

    def close(self, stream: int) -> None:
        self.closed.append(stream)
        if stream in (_REQUEST, _RESPONSE):
            self.reset = True
            self.request_paused = self.response_paused = False
            self.code_details = self.code_details or "wasm_fail_stream"

    def send_local_reply(self, resp: LocalResponse) -> None:
        """Envoy's sendLocalReply: the reply goes through the module's own response callbacks."""
        if self.response_started or self.finished:
            return
        self.request_paused = False
        self.request_ended = True
        self.code_details = resp.details
        # As Envoy 1.40 shows the reply to the module (measured): content-length and content-type only
        # with a body.
        headers = [(":status", str(resp.status_code)), *resp.headers]
        if resp.body:
            headers += [("content-length", str(len(resp.body))), ("content-type", "text/plain")]
        self.response_headers(headers, end_of_stream=not resp.body)
        if resp.body and not self.finished:
            self.response_body(resp.body, end_of_stream=True)

    # -- properties ----------------------------------------------------------------------------------

    def property_view(self) -> dict[str, Any]:
        """The property tree Envoy gives this stream now (see _properties)."""
        st = self._rt.state
        req = {decode(k): decode(v) for k, v in self.maps[_REQ_H]}
        path = req.get(":path", "")
        parts = urlsplit(path)
        joined = HeaderMapValue()
        for k, v in self.maps[_REQ_H]:
            key = decode(k)
            joined[key] = f"{joined[key]},{decode(v)}" if key in joined else decode(v)
        header_bytes = sum(len(k) + len(v) + 4 for k, v in self.maps[_REQ_H] if not k.startswith(b":"))
        request: dict[str, Any] = {
            "path": path, "url_path": parts.path, "host": req.get(":authority"), "scheme": req.get(":scheme"),
            "method": req.get(":method"), "headers": joined, "referer": req.get("referer"),
            "useragent": req.get("user-agent"), "id": req.get("x-request-id"), "protocol": st.protocol,
            "query": parts.query, "time": self.start_ns, "size": self.request_body_size,
            "total_size": header_bytes + self.request_body_size,
            "duration": (self.end_ns - self.start_ns) if self.end_ns is not None else None,
        }
        resp_headers = HeaderMapValue()
        for k, v in self.maps[_RESP_H] if self.response_started else []:
            key = decode(k)
            resp_headers[key] = f"{resp_headers[key]},{decode(v)}" if key in resp_headers else decode(v)
        done = self.end_ns is not None
        response: dict[str, Any] = {
            "flags": 0, "headers": resp_headers, "size": self.response_body_size,
            "total_size": (sum(len(k) + len(v) + 4 for k, v in self.maps[_RESP_H]) + self.response_body_size)
            if self.response_started else 0,
        }
        if self.response_code is not None:
            response["code"] = self.response_code
            response["code_details"] = self.code_details
        if done:
            grpc = first(self.response_header_map, "grpc-status") or first(self.response_trailer_map,
                                                                           "grpc-status")
            response["grpc_status"] = int(grpc) if grpc and grpc.isdigit() else _GRPC_FROM_HTTP.get(
                self.response_code or 0, 2)
        tree = self._connection_view()
        tree.update({
            "request": request, "response": response,
            "xds": {"cluster_name": st.route_cluster, "route_name": "", "listener_direction": 0},
        })
        if self.response_started and st.upstream_address:
            tree["upstream"] = {"address": f"{st.upstream_address}:{self.upstream_port}",
                                "port": self.upstream_port}
        return tree


class TcpContext(_Stream):
    """One TCP connection through a network filter: ``new_connection``, data each way, close events."""

    def __init__(self, runtime: Runtime, context_id: int, connection_id: int, source_port: int) -> None:
        super().__init__(runtime, context_id, connection_id, source_port)
        self.buffers = {2: b"", 3: b""}
        self.sent_upstream: list[bytes] = []  # downstream data the filter let through
        self.sent_downstream: list[bytes] = []  # upstream data the filter let through
        self.downstream_closed = False
        self.upstream_closed = False
        self.created = False

    @property
    def downstream_data_buffer(self) -> bytes:
        return self.buffers[2]

    @property
    def upstream_data_buffer(self) -> bytes:
        return self.buffers[3]

    def new_connection(self) -> FilterStatus:
        rt = self._rt
        if not self.created:
            self.created = True
            rt.callback("proxy_on_context_create", self.context_id, rt.state.root_context_id())
        return self._status(rt.callback("proxy_on_new_connection", self.context_id))

    def _status(self, r: int | None) -> FilterStatus:
        if self._rt.failed_reason is not None:
            return FilterStatus.STOP_ITERATION
        return FilterStatus.CONTINUE if not r else FilterStatus.STOP_ITERATION

    def downstream_data(self, data: bytes, end_of_stream: bool = False) -> FilterStatus:
        """Client -> upstream bytes (Envoy's onData)."""
        self.buffers[2] = bytes(data)
        status = self._status(self._rt.callback("proxy_on_downstream_data", self.context_id, len(data),
                                                int(end_of_stream)))
        if status == FilterStatus.CONTINUE:
            self.sent_upstream.append(self.buffers[2])
            self.buffers[2] = b""
        return status

    def upstream_data(self, data: bytes, end_of_stream: bool = False) -> FilterStatus:
        """Upstream -> client bytes (Envoy's onWrite); end_of_stream also ends the upstream side."""
        self.buffers[3] = bytes(data)
        status = self._status(self._rt.callback("proxy_on_upstream_data", self.context_id, len(data),
                                                int(end_of_stream)))
        if status == FilterStatus.CONTINUE:
            self.sent_downstream.append(self.buffers[3])
            self.buffers[3] = b""
        if end_of_stream:
            self.upstream_close(PeerType.UNKNOWN)
        return status

    def downstream_close(self, peer: int = PeerType.REMOTE) -> None:
        """The client side closed (REMOTE) or Envoy closed it (LOCAL); then the context ends."""
        if self.downstream_closed:
            return
        self.downstream_closed = True
        self._rt.callback("proxy_on_downstream_connection_close", self.context_id, int(peer))
        self._finish()

    def upstream_close(self, peer: int = PeerType.REMOTE) -> None:
        if self.upstream_closed or self.finished:
            return
        self.upstream_closed = True
        self._rt.callback("proxy_on_upstream_connection_close", self.context_id, int(peer))
        if self.downstream_closed:
            self._finish()

    def done(self) -> None:
        """Close both sides (downstream first), ending the context."""
        self.downstream_close(PeerType.LOCAL)

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        rt = self._rt
        rt.callback("proxy_on_done", self.context_id)  # Envoy's onCloseTCP: done, log, delete
        rt.callback("proxy_on_log", self.context_id)
        rt.callback("proxy_on_delete", self.context_id)
        rt.forget(self.context_id)

    def close(self, stream: int) -> None:
        self.closed.append(stream)

    def resume(self, stream: int) -> None:
        self.continued.append(stream)

    def send_local_reply(self, resp: LocalResponse) -> None:
        return None

    def property_view(self) -> dict[str, Any]:
        tree = self._connection_view()
        st = self._rt.state
        if st.upstream_address and (self.sent_upstream or self.buffers[3]):
            tree["upstream"] = {"address": f"{st.upstream_address}:{st.upstream_port}", "port": st.upstream_port}
        return tree


def now_ns() -> int:
    return time.time_ns()
