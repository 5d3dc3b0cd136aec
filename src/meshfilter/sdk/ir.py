"""The typed intermediate representation of a Python filter: what the checker produces and the
backends (``meshfilter.wasm.python_filter``, ``meshfilter.lua.python_filter``) consume. Pure data.

Values have one of a few types (:data:`STR`, :data:`OPT_STR`, :data:`INT`, :data:`BOOL`,
:data:`LIST`); the handles a callback receives (:data:`REQUEST`, :data:`RESPONSE`) exist only at
compile time. Every expression and statement carries its source position (1-based line and column)
so that a backend can name the line a piece of generated code came from.

Semantics the backends implement (the reference is :mod:`meshfilter.sdk.api`):

* strings are byte strings; ``lower``/``upper`` change ASCII letters only, ``strip`` removes the
  ASCII whitespace of :data:`STRIP_BYTES`; ``len`` counts bytes; ``in`` is a byte substring test;
* ints are exact: the checker proves every int stays within ``±(2**53 - 1)`` (:data:`INT_LIMIT`);
* a header read joins every value of the name, in order, with ``","``; absent is ``None``;
* a header write with a name that is not an RFC 9110 token, or a value with CR, LF or NUL, is
  skipped with a warning (:data:`SKIP_NAME`, :data:`SKIP_VALUE`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

# -- types ------------------------------------------------------------------------------------------
STR = "str"
OPT_STR = "str | None"
INT = "int"
BOOL = "bool"
NONE = "None"
LIST = "list[str]"
REQUEST = "Request"
RESPONSE = "Response"
REQ_HEADERS = "request headers"
RESP_HEADERS = "response headers"
VOID = "no value"
VALUE_TYPES = (STR, OPT_STR, INT, BOOL, LIST)
HANDLE_TYPES = (REQUEST, RESPONSE, REQ_HEADERS, RESP_HEADERS)

# -- limits and fixed texts shared by every backend --------------------------------------------------
INT_LIMIT = 2**53 - 1          # every int the checker accepts stays within ±INT_LIMIT
CONFIG_INT_MAX = 2**31 - 1     # a Config int field holds -2**31 .. 2**31 - 1
LIST_MAX = 65536               # entries of a Config list field
LEN_MAX = 2**32                # bytes of any string (the Wasm address space)
STATUS_MAX = 999_999_999       # response.status parses at most 9 digits (0 when it cannot)
STRIP_BYTES = b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "  # what Python's str.strip() removes among ASCII
SKIP_NAME = "{op} skipped: the header name is not a valid HTTP header name"
SKIP_VALUE = "{op} skipped: the header value contains CR, LF or NUL"
BAD_STATUS = "respond: status {status} is not in 200..599; answering 500"
OUT_OF_MEMORY = "out of memory; the rest of the callback was skipped"
REQUEST_ATTRS = {"path": ":path", "method": ":method", "authority": ":authority", "scheme": ":scheme"}
CALLBACKS = ("on_request_headers", "on_response_headers")
LOG_LEVELS = ("debug", "info", "warn", "error")

Pos = tuple[int, int]


# -- expressions ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expr:
    type: str
    pos: Pos


@dataclass(frozen=True)
class Const(Expr):
    value: str | int | bool | None  # str in wire form (see meshfilter.sdk.api.to_wire)


@dataclass(frozen=True)
class ListConst(Expr):
    values: tuple[str, ...]


@dataclass(frozen=True)
class Var(Expr):
    name: str


@dataclass(frozen=True)
class ConfigRef(Expr):
    field: str


@dataclass(frozen=True)
class Concat(Expr):
    parts: tuple[Expr, ...]  # every part is a STR


@dataclass(frozen=True)
class IntToStr(Expr):
    value: Expr


@dataclass(frozen=True)
class Arith(Expr):
    op: str  # "+" or "-"
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Compare(Expr):
    op: str  # == != < <= > >=
    left: Expr
    right: Expr


@dataclass(frozen=True)
class IsNone(Expr):
    value: Expr
    negate: bool  # True for "is not None"


@dataclass(frozen=True)
class Contains(Expr):
    kind: str  # "str" (substring), "list" (membership), "headers" (a header is present)
    needle: Expr
    haystack: Expr | None  # None for kind "headers"
    map: str = ""          # "request" or "response" for kind "headers"
    negate: bool = False


@dataclass(frozen=True)
class BoolOp(Expr):
    op: str  # "and" / "or"
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not(Expr):
    value: Expr


@dataclass(frozen=True)
class Truthy(Expr):
    value: Expr  # STR / OPT_STR (not None and not empty), INT (not 0), LIST (not empty)


@dataclass(frozen=True)
class StrMethod(Expr):
    method: str  # startswith endswith (BOOL); removeprefix removesuffix lower upper strip (STR)
    value: Expr
    arg: Expr | None = None


@dataclass(frozen=True)
class Len(Expr):
    value: Expr


@dataclass(frozen=True)
class HeaderGet(Expr):
    map: str  # "request" / "response"
    name: Expr


@dataclass(frozen=True)
class Pseudo(Expr):
    """``request.path`` and friends: the pseudo-header's value, ``""`` when absent."""

    name: str  # ":path", ":method", ":authority", ":scheme"


@dataclass(frozen=True)
class Status(Expr):
    pass


@dataclass(frozen=True)
class CallHelper(Expr):
    name: str
    args: tuple[Expr, ...]  # value arguments only; handle parameters are implicit


# -- statements -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stmt:
    pos: Pos


@dataclass(frozen=True)
class Assign(Stmt):
    name: str
    value: Expr


@dataclass(frozen=True)
class If(Stmt):
    cond: Expr
    body: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...]


@dataclass(frozen=True)
class For(Stmt):
    name: str
    iterable: Expr  # a LIST
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class Break(Stmt):
    pass


@dataclass(frozen=True)
class Continue(Stmt):
    pass


@dataclass(frozen=True)
class Return(Stmt):
    value: Expr | None


@dataclass(frozen=True)
class HeaderOp(Stmt):
    map: str  # "request" / "response"
    op: str   # "set" / "add" / "remove"
    name: Expr
    value: Expr | None
    name_checked: bool = False   # the name is a valid header name already (literal or HeaderName field)
    value_checked: bool = False  # the value has no CR/LF/NUL already


@dataclass(frozen=True)
class Respond(Stmt):
    status: Expr
    body: Expr
    headers: tuple[tuple[str, Expr], ...]  # lower-cased literal names
    status_checked: bool = False  # a literal in 200..599


@dataclass(frozen=True)
class ClearRouteCache(Stmt):
    pass


@dataclass(frozen=True)
class Log(Stmt):
    level: str
    text: Expr


@dataclass(frozen=True)
class ExprStmt(Stmt):
    value: CallHelper


# -- program ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Function:
    name: str
    params: tuple[tuple[str, str], ...]  # value parameters (name, type)
    handle: str                          # "" or REQUEST / RESPONSE: the handle parameter, if any
    handle_param: str                    # its name in the source
    returns: str                         # a value type, or VOID
    body: tuple[Stmt, ...]
    locals: dict[str, str] = field(default_factory=dict)  # every local (params excluded) -> type
    pos: Pos = (0, 0)

    @property
    def is_callback(self) -> bool:
        return self.name in CALLBACKS


@dataclass(frozen=True)
class ConfigField:
    """One field of the filter's ``Config``: ``kind`` is str, int, bool, list, header_name or header_value."""

    name: str
    kind: str
    required: bool
    default: str | int | bool | tuple[str, ...] | None = None  # wire form; a tuple for lists


@dataclass(frozen=True)
class Program:
    """One checked filter class."""

    source: str            # the file as given
    class_name: str
    root_id: str
    log_name: str           # the prefix of the module's configuration problem lines
    config: tuple[ConfigField, ...] | None  # None: the class has no Config
    functions: dict[str, Function]

    @property
    def callbacks(self) -> tuple[str, ...]:
        return tuple(c for c in CALLBACKS if c in self.functions)

    def helpers(self) -> list[Function]:
        """Helpers in an order where every function comes after the helpers it calls."""
        order: list[str] = []

        def visit(name: str) -> None:
            if name in order:
                return
            for callee in sorted(calls_in(self.functions[name].body)):
                visit(callee)
            order.append(name)

        for name in self.functions:
            visit(name)
        return [self.functions[n] for n in order if not self.functions[n].is_callback]


def walk_exprs(e: Expr) -> Iterator[Expr]:
    """Every expression inside ``e`` (``e`` included), depth first."""
    yield e
    for value in vars(e).values():
        if isinstance(value, Expr):
            yield from walk_exprs(value)
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, Expr):
                    yield from walk_exprs(item)


def stmt_exprs(s: Stmt) -> list[Expr]:
    """The expressions a statement evaluates itself (not those of nested statements)."""
    out: list[Expr] = []
    for value in vars(s).values():
        if isinstance(value, Expr):
            out.append(value)
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, Expr):
                    out.append(item)
                elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Expr):
                    out.append(item[1])
    return out


def walk_stmts(body: tuple[Stmt, ...]) -> Iterator[Stmt]:
    for s in body:
        yield s
        if isinstance(s, If):
            yield from walk_stmts(s.body)
            yield from walk_stmts(s.orelse)
        elif isinstance(s, For):
            yield from walk_stmts(s.body)


def calls_in(body: tuple[Stmt, ...]) -> set[str]:
    """Names of the helpers a body calls."""
    out: set[str] = set()
    for s in walk_stmts(body):
        for e in stmt_exprs(s):
            for sub in walk_exprs(e):
                if isinstance(sub, CallHelper):
                    out.add(sub.name)
    return out
