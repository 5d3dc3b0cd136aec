"""The filter API (``HttpFilter``, ``Request``, ``Response``) and its reference semantics in CPython.

A filter is a class; meshfilter runs its methods as they are, against these in-memory objects (the
reference), and compiles the same source to Wasm and Lua, which implement exactly what this module
does. Strings inside a filter are in *wire form*: the request's bytes, one character per byte, with
bytes 0x80-0xFF as the lone surrogates U+DC80-U+DCFF (:func:`to_wire`). That is what makes Python's
own ``str`` methods agree with the byte-level backends: ``lower``/``upper`` change ASCII letters only,
``len`` counts bytes, ``in`` is a byte substring test. What a filter returns or logs is turned back
into ordinary text with :func:`from_wire`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from meshfilter.errors import UsageError
from meshfilter.sdk.ir import BAD_STATUS, SKIP_NAME, SKIP_VALUE
from meshfilter.sdk.wire import TCHARS, from_wire, snake_case, wire_bytes
from meshfilter.sdk.wire import to_wire as _to_wire

__all__ = ["HeaderName", "HeaderValue", "Headers", "HttpFilter", "LocalReply", "Log", "Request", "Response",
           "from_wire", "to_wire", "wire_bytes"]

HeaderItems = Iterable[tuple[str | bytes, str | bytes]] | Mapping[str, str]


# Config field types: to type checkers they are str (so a str default type-checks); the checker
# reads them by name and checks the configured values.
HeaderName = Annotated[str, "a Config field: a valid HTTP header name (RFC 9110 token), lower-cased"]
HeaderValue = Annotated[str, "a Config field: a string without CR, LF or NUL"]


def to_wire(text: str | bytes) -> str:
    """:func:`meshfilter.sdk.wire.to_wire`, with a one-line error for a lone surrogate."""
    try:
        return _to_wire(text)
    except UnicodeEncodeError:
        raise UsageError(f"{text!r} has a lone surrogate that is not an escaped byte", where="headers",
                         hint="pass bytes for values that are not UTF-8") from None


def valid_name(name: str) -> bool:
    return bool(name) and all(ord(c) < 128 and ord(c) in TCHARS for c in name)


def valid_value(value: str) -> bool:
    return not any(c in value for c in "\r\n\0")


@dataclass(frozen=True)
class LocalReply:
    """A reply the filter sent itself (``request.respond``): the request went no further."""

    status: int
    body: str
    headers: list[tuple[str, str]]


@dataclass
class _Recorder:
    """What one request did, as the reference runner records it."""

    logs: list[tuple[str, str]] = field(default_factory=list)
    route_cache_clears: int = 0
    request_mutations: int = 0
    local_reply: LocalReply | None = None


class Log:
    """``self.log``: lines go to the proxy's log (Wasm ``proxy_log``, Lua ``logInfo``/...)."""

    def __init__(self, recorder: _Recorder | None = None) -> None:
        self._recorder = recorder if recorder is not None else _Recorder()

    def _emit(self, level: str, text: str) -> None:
        if not isinstance(text, str):
            raise UsageError(f"self.log.{level}() takes a str, got {type(text).__name__}", where="log")
        self._recorder.logs.append((level, text))

    def debug(self, text: str) -> None:
        self._emit("debug", text)

    def info(self, text: str) -> None:
        self._emit("info", text)

    def warn(self, text: str) -> None:
        self._emit("warn", text)

    def error(self, text: str) -> None:
        self._emit("error", text)


class Headers:
    """A header map: names compare ASCII case-insensitively; a read joins every value with ``","``."""

    def __init__(self, items: HeaderItems = (), *, kind: str = "request", recorder: _Recorder | None = None) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: list[tuple[str, str]] = [(to_wire(k).lower(), to_wire(v)) for k, v in pairs]
        self._kind = kind
        self._recorder = recorder if recorder is not None else _Recorder()

    def get(self, name: str) -> str | None:
        key = name.lower()
        values = [v for k, v in self._items if k == key]
        return ",".join(values) if values else None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def _writable(self, op: str, name: str, value: str | None) -> bool:
        where = f"{self._kind}.headers.{op}"
        if not valid_name(name):
            self._recorder.logs.append(("warn", SKIP_NAME.format(op=where)))
            return False
        if value is not None and not valid_value(value):
            self._recorder.logs.append(("warn", SKIP_VALUE.format(op=where)))
            return False
        if self._kind == "request":
            self._recorder.request_mutations += 1
        return True

    def set(self, name: str, value: str) -> None:
        """Replace: afterwards the header has exactly this one value."""
        if self._writable("set", name, value):
            key = name.lower()
            self._items = [(k, v) for k, v in self._items if k != key] + [(key, value)]

    def add(self, name: str, value: str) -> None:
        if self._writable("add", name, value):
            self._items.append((name.lower(), value))

    def remove(self, name: str) -> None:
        if self._writable("remove", name, None):
            key = name.lower()
            self._items = [(k, v) for k, v in self._items if k != key]

    def items(self) -> list[tuple[str, str]]:
        """The header lines in order (wire form)."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({[(k, from_wire(v)) for k, v in self._items]!r})"


class Request:
    """The request as ``on_request_headers`` sees it."""

    def __init__(self, headers: HeaderItems = (), *, recorder: _Recorder | None = None) -> None:
        self._recorder = recorder if recorder is not None else _Recorder()
        self.headers = Headers(headers, kind="request", recorder=self._recorder)

    def _pseudo(self, name: str) -> str:
        return self.headers.get(name) or ""

    @property
    def path(self) -> str:
        return self._pseudo(":path")

    @property
    def method(self) -> str:
        return self._pseudo(":method")

    @property
    def authority(self) -> str:
        return self._pseudo(":authority")

    @property
    def scheme(self) -> str:
        return self._pseudo(":scheme")

    def respond(self, status: int, body: str = "", headers: Mapping[str, str] | None = None) -> None:
        """Answer the request here; it goes no further upstream."""
        if self._recorder.local_reply is not None:
            return
        if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
            self._recorder.logs.append(("warn", BAD_STATUS.format(status=status)))
            status = 500
        out: list[tuple[str, str]] = []
        for name, value in (headers or {}).items():
            if not valid_name(name):
                self._recorder.logs.append(("warn", SKIP_NAME.format(op="request.respond")))
            elif not valid_value(value):
                self._recorder.logs.append(("warn", SKIP_VALUE.format(op="request.respond")))
            else:
                out.append((name.lower(), value))
        self._recorder.local_reply = LocalReply(status, body, out)

    def clear_route_cache(self) -> None:
        """Ask the proxy to select the route again (after changing headers it routes on)."""
        self._recorder.route_cache_clears += 1


class Response:
    """The response as ``on_response_headers`` sees it."""

    def __init__(self, headers: HeaderItems = (), *, recorder: _Recorder | None = None) -> None:
        self._recorder = recorder if recorder is not None else _Recorder()
        self.headers = Headers(headers, kind="response", recorder=self._recorder)

    @property
    def status(self) -> int:
        """``:status`` as an int (0 when it is missing or not a number of at most 9 digits)."""
        raw = self.headers.get(":status") or ""
        return int(raw) if 0 < len(raw) <= 9 and raw.isascii() and raw.isdigit() else 0


class _ConfigValues:
    """``self.config``: the configuration's fields as attributes (read only)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        for k, v in values.items():
            object.__setattr__(self, k, tuple(v) if isinstance(v, list) else v)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("the configuration is read only")

    def __repr__(self) -> str:
        return f"Config({vars(self)!r})"


class HttpFilter:
    """Base class of a filter. Define ``on_request_headers(self, request)`` and/or
    ``on_response_headers(self, response)``; optionally ``root_id`` and a nested ``class Config``.

    ``HttpFilter(config)`` checks the class (as the compilers do) and the configuration (a dict, JSON
    text or bytes; as the Wasm module does) and raises one-line errors for either.
    """

    root_id: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "root_id" not in cls.__dict__:
            cls.root_id = snake_case(cls.__name__)

    def __init__(self, config: Mapping[str, Any] | str | bytes | None = None) -> None:
        from meshfilter.sdk.checker import check_class

        program = check_class(type(self))
        values: dict[str, Any] = {}
        if program.config is not None:
            from meshfilter.sdk.config import example_config, parse_config

            values = parse_config(program.config, config, example=example_config(program.config))
        self.config: Any = _ConfigValues(values)
        self.log = Log()
