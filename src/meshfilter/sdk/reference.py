"""The reference runner: a filter class run as it is, in CPython, against an in-memory request.

:func:`run_request` is what every backend is compared with. It follows Envoy 1.40 where a filter can
tell: a local reply is answered with the reply's own headers plus ``content-type: text/plain`` and
``content-length`` when it has a body, and the filter's ``on_response_headers`` runs on that reply too
(both Envoy's Wasm and Lua filters do this).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshfilter.sdk.api import (
    HeaderItems,
    HttpFilter,
    LocalReply,
    Request,
    Response,
    _Recorder,
    from_wire,
    wire_bytes,
)

__all__ = ["Result", "local_reply_headers", "run_request"]

Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class Result:
    """What one request did. Header values are ordinary text (:func:`~meshfilter.sdk.api.from_wire`).

    ``request_headers``: the request headers after ``on_request_headers`` (what goes upstream, unless
    ``local_reply`` is set). ``response_headers``: the response after ``on_response_headers`` (the
    local reply's, or the given upstream response's), None when there was no response.
    ``request_header_writes``: how many header writes (set/add/remove) reached the request headers:
    Envoy 1.40 selects the route again after any of them, as after ``clear_route_cache()``.
    """

    request_headers: Headers
    response_headers: Headers | None
    local_reply: LocalReply | None
    logs: list[tuple[str, str]]
    route_cache_clears: int
    request_header_writes: int

    def request_header(self, name: str) -> str | None:
        """Every value of ``name`` joined with ``","`` (None when absent), as a filter reads it."""
        return _get(self.request_headers, name)

    def response_header(self, name: str) -> str | None:
        return _get(self.response_headers or [], name)

    @property
    def route_reselected(self) -> bool:
        """Whether Envoy 1.40 would select the route again for this request."""
        return self.local_reply is None and (self.route_cache_clears > 0 or self.request_header_writes > 0)


def _get(headers: Headers, name: str) -> str | None:
    values = [v for k, v in headers if k == name.lower()]
    return ",".join(values) if values else None


def local_reply_headers(reply: LocalReply) -> Headers:
    """The response headers of a local reply as the filter's response callback sees them (wire form)."""
    out = [(":status", str(reply.status)), *reply.headers]
    if reply.body:
        if not any(k == "content-type" for k, _ in reply.headers):
            out.append(("content-type", "text/plain"))
        out.append(("content-length", str(len(wire_bytes(reply.body)))))
    return out


def _text(headers: Headers) -> Headers:
    return [(k, from_wire(v)) for k, v in headers]


def run_request(filter_class: type[HttpFilter], config: Mapping[str, Any] | str | bytes | None,
                request_headers: HeaderItems, response_headers: HeaderItems | None = None) -> Result:
    """Run ``filter_class`` with ``config`` on one request (and, when given, its upstream response).

    The class is checked first, exactly as the compilers check it (one-line
    :class:`~meshfilter.sdk.checker.FilterSourceError` for a construct they refuse), and the
    configuration as the Wasm module checks it (:class:`~meshfilter.sdk.config.ConfigProblem`).
    """
    instance = filter_class(config)
    recorder = _Recorder()
    instance.log._recorder = recorder
    request = Request(request_headers, recorder=recorder)
    if hasattr(filter_class, "on_request_headers"):
        instance.on_request_headers(request)  # type: ignore[attr-defined]
    reply = recorder.local_reply
    response: Response | None = None
    if reply is not None:
        response = Response(local_reply_headers(reply), recorder=recorder)
    elif response_headers is not None:
        response = Response(response_headers, recorder=recorder)
    if response is not None and hasattr(filter_class, "on_response_headers"):
        instance.on_response_headers(response)  # type: ignore[attr-defined]
    if reply is not None:
        reply = LocalReply(reply.status, from_wire(reply.body), _text(reply.headers))
    return Result(request_headers=_text(request.headers.items()),
                  response_headers=_text(response.headers.items()) if response is not None else None,
                  local_reply=reply, logs=[(lvl, from_wire(t)) for lvl, t in recorder.logs],
                  route_cache_clears=recorder.route_cache_clears,
                  request_header_writes=recorder.request_mutations)
