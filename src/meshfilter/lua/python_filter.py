"""A filter written in Python (``meshfilter.sdk``), compiled to an Envoy Lua script. Pure.

Lua has no plugin configuration, so the configuration is checked at build time
(:func:`meshfilter.sdk.config.parse_config`, the same problems the Wasm module logs) and compiled in.
The script implements the reference semantics of :mod:`meshfilter.sdk.api`:

* strings are Lua strings (bytes); ``str | None`` is a string or ``nil``, and the checker has proved
  every use nil-safe; ints are Lua numbers (exact: the checker proved them within ±(2**53 - 1)) and
  print with ``string.format("%d")``;
* ``headers.get`` is Envoy's ``headers:get()``, which already joins repeated values with ``","``;
  ``set`` is ``headers:replace()``, ``add``/``remove`` are ``add``/``remove``, each after the same
  name/value checks as the other backends (skipped with a warning log);
* substring tests are plain ``string.find(s, x, 1, true)`` (never a pattern), ``lower``/``upper``
  are LuaJIT's ASCII-only ``string.lower``/``upper``, ``strip`` removes Python's ASCII whitespace;
* ``request.respond()`` is ``request_handle:respond()``; ``clear_route_cache()`` is
  ``request_handle:clearRouteCache()``; ``self.log.info(...)`` is ``handle:logInfo(...)``.

Every literal is a decimal-escaped string (no value can break out of it), identifiers are prefixed
(``v_``, ``f_``, ``c_``) so no Python name clashes with a Lua keyword, ``envoy_on_response`` exists only
when the class defines ``on_response_headers``. :func:`compile_program` checks the result with LuaJIT.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meshfilter.sdk import ir
from meshfilter.sdk.ir import BOOL, INT, NONE, OPT_STR, STR, Expr, Function, Program, Stmt
from meshfilter.sdk.wire import wire_bytes

__all__ = ["build_python_filter", "compile_program", "render_python_filter"]

GENERATOR = "meshfilter lua build"
_LOG = {"debug": "logDebug", "info": "logInfo", "warn": "logWarn", "error": "logErr"}
_TCHAR_CLASS = "[^" + "".join("%" + c for c in "!#$%&'*+-.^_`|~") + "0-9A-Za-z]"

_RUNTIME: dict[str, str] = {
    "valid_name": f"""local function valid_name(n)
  return n ~= "" and find(n, "{_TCHAR_CLASS}") == nil
end""",
    "clean": r"""local function clean(v)
  return find(v, "[\r\n%z]") == nil
end""",
    "strip": r"""local WS = {[9] = true, [10] = true, [11] = true, [12] = true, [13] = true, [28] = true, [29] = true,
  [30] = true, [31] = true, [32] = true}
local function strip(s)
  local i, j = 1, #s
  while i <= j and WS[byte(s, i)] do i = i + 1 end
  while j >= i and WS[byte(s, j)] do j = j - 1 end
  return sub(s, i, j)
end""",
    "starts": """local function starts(s, p)
  return sub(s, 1, #p) == p
end""",
    "ends": """local function ends(s, p)
  return #p == 0 or (#s >= #p and sub(s, -#p) == p)
end""",
    "rmprefix": """local function rmprefix(s, p)
  if sub(s, 1, #p) == p then return sub(s, #p + 1) end
  return s
end""",
    "rmsuffix": """local function rmsuffix(s, p)
  if #p > 0 and #s >= #p and sub(s, -#p) == p then return sub(s, 1, #s - #p) end
  return s
end""",
    "truthy": """local function truthy(s)
  return s ~= nil and s ~= ""
end""",
    "has": """local function has(t, s)
  for i = 1, #t do
    if t[i] == s then return true end
  end
  return false
end""",
    "status": r"""local function status(hs)
  local s = hs:get(":status")
  if s ~= nil and #s >= 1 and #s <= 9 and find(s, "%D") == nil then return tonumber(s) end
  return 0
end""",
    "respond": """local function respond(h, st, body, list)
  if st < 200 or st > 599 then
    h:logWarn(BAD_STATUS_1 .. format("%d", st) .. BAD_STATUS_2)
    st = 500
  end
  local headers = {[":status"] = format("%d", st)}
  for i = 1, #list, 2 do
    if clean(list[i + 1]) then headers[list[i]] = list[i + 1] else h:logWarn(SKIP_RESPOND) end
  end
  h:respond(headers, body)
end""",
}
_DEPS = {"respond": ("clean",), "rmprefix": (), "rmsuffix": ()}
_PRELUDE = "local find, sub, byte, format = string.find, string.sub, string.byte, string.format"


def lua_bytes(raw: bytes) -> str:
    """A Lua double-quoted literal for raw bytes: printable ASCII kept, the rest decimal-escaped."""
    out = ['"']
    for b in raw:
        out.append(chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\{b:03d}")
    out.append('"')
    return "".join(out)


def _lit(text: str) -> str:
    return lua_bytes(wire_bytes(text))


class _Compiler:
    def __init__(self, program: Program, config: Mapping[str, Any]) -> None:
        self.p = program
        self.config = config
        self.used: list[str] = []
        self.lists: dict[tuple[str, ...], str] = {}
        self.labels = 0
        self.lines: list[str] = []
        self.temps = 0

    def use(self, name: str) -> str:
        if name not in self.used:
            for dep in _DEPS.get(name, ()):
                self.use(dep)
            self.used.append(name)
        return name

    def temp(self) -> str:
        self.temps += 1
        return f"t{self.temps}"

    # -- expressions ----------------------------------------------------------------------------

    def list_const(self, values: tuple[str, ...]) -> str:
        if values not in self.lists:
            self.lists[values] = f"L{len(self.lists) + 1}"
        return self.lists[values]

    def ex(self, e: Expr) -> str:
        if isinstance(e, ir.Const):
            if e.value is None or e.type == NONE:
                return "nil"
            if e.type == BOOL:
                return "true" if e.value else "false"
            if e.type == INT:
                return str(e.value)
            return _lit(str(e.value))
        if isinstance(e, ir.ListConst):
            return self.list_const(e.values)
        if isinstance(e, ir.Var):
            return f"v_{e.name}"
        if isinstance(e, ir.ConfigRef):
            return f"c_{e.field}"
        if isinstance(e, ir.Concat):
            return "(" + " .. ".join(self.ex(p) for p in e.parts) + ")"
        if isinstance(e, ir.IntToStr):
            return f'format("%d", {self.ex(e.value)})'
        if isinstance(e, ir.Arith):
            return f"({self.ex(e.left)} {e.op} {self.ex(e.right)})"
        if isinstance(e, ir.Compare):
            op = "~=" if e.op == "!=" else e.op
            return f"({self.ex(e.left)} {op} {self.ex(e.right)})"
        if isinstance(e, ir.IsNone):
            return f"({self.ex(e.value)} {'~=' if e.negate else '=='} nil)"
        if isinstance(e, ir.Contains):
            if e.kind == "headers":
                out = f"(hs:get({self.ex(e.needle)}) ~= nil)"
            elif e.kind == "str":
                assert e.haystack is not None
                out = f"(find({self.ex(e.haystack)}, {self.ex(e.needle)}, 1, true) ~= nil)"
            else:
                assert e.haystack is not None
                out = f"{self.use('has')}({self.ex(e.haystack)}, {self.ex(e.needle)})"
            return f"(not {out})" if e.negate else out
        if isinstance(e, ir.BoolOp):
            return f"({self.ex(e.left)} {e.op} {self.ex(e.right)})"
        if isinstance(e, ir.Not):
            return f"(not {self.ex(e.value)})"
        if isinstance(e, ir.Truthy):
            v = self.ex(e.value)
            if e.value.type == STR:
                return f"({v} ~= \"\")"
            if e.value.type == OPT_STR:
                if not isinstance(e.value, (ir.Var, ir.ConfigRef, ir.Const)):
                    return f"{self.use('truthy')}({v})"
                return f"({v} ~= nil and {v} ~= \"\")"
            if e.value.type == INT:
                return f"({v} ~= 0)"
            return f"(#{v} > 0)"
        if isinstance(e, ir.StrMethod):
            s = self.ex(e.value)
            if e.method in ("lower", "upper"):
                return f"string.{e.method}({s})"
            if e.method == "strip":
                return f"{self.use('strip')}({s})"
            assert e.arg is not None
            fn = {"startswith": "starts", "endswith": "ends", "removeprefix": "rmprefix",
                  "removesuffix": "rmsuffix"}[e.method]
            return f"{self.use(fn)}({s}, {self.ex(e.arg)})"
        if isinstance(e, ir.Len):
            return f"#{self.ex(e.value)}"
        if isinstance(e, ir.HeaderGet):
            return f"hs:get({self.ex(e.name)})"
        if isinstance(e, ir.Pseudo):
            return f"(hs:get({_lit(e.name)}) or \"\")"
        if isinstance(e, ir.Status):
            return f"{self.use('status')}(hs)"
        if isinstance(e, ir.CallHelper):
            return f"f_{e.name}({', '.join(['h', 'hs', *(self.ex(a) for a in e.args)])})"
        raise AssertionError(type(e))

    # -- statements -----------------------------------------------------------------------------

    def emit(self, depth: int, line: str) -> None:
        assert "\n" not in line
        self.lines.append("  " * depth + line)

    def block(self, body: tuple[Stmt, ...], depth: int, fn: Function, loops: list[int]) -> None:
        for s in body:
            self.stmt(s, depth, fn, loops)

    def stmt(self, s: Stmt, depth: int, fn: Function, loops: list[int]) -> None:
        emit = self.emit
        if isinstance(s, ir.Assign):
            emit(depth, f"v_{s.name} = {self.ex(s.value)}")
        elif isinstance(s, ir.If):
            emit(depth, f"if {self.ex(s.cond)} then")
            self.block(s.body, depth + 1, fn, loops)
            if s.orelse:
                emit(depth, "else")
                self.block(s.orelse, depth + 1, fn, loops)
            emit(depth, "end")
        elif isinstance(s, ir.For):
            self.labels += 1
            n = self.labels
            emit(depth, f"for _, it{n} in ipairs({self.ex(s.iterable)}) do")
            emit(depth + 1, f"v_{s.name} = it{n}")
            self.block(s.body, depth + 1, fn, [*loops, n])
            if any(isinstance(x, ir.Continue) for x in _own_loop_stmts(s.body)):
                emit(depth + 1, f"::cont{n}::")
            emit(depth, "end")
        elif isinstance(s, ir.Break):
            emit(depth, "do break end")
        elif isinstance(s, ir.Continue):
            emit(depth, f"goto cont{loops[-1]}")
        elif isinstance(s, ir.Return):
            value = "" if s.value is None else " " + self.ex(s.value)
            emit(depth, f"do return{value} end")
        elif isinstance(s, ir.HeaderOp):
            self.header_op(s, depth)
        elif isinstance(s, ir.Respond):
            flat = ", ".join(f"{_lit(k)}, {self.ex(v)}" for k, v in s.headers)
            emit(depth, f"{self.use('respond')}(h, {self.ex(s.status)}, {self.ex(s.body)}, {{{flat}}})")
        elif isinstance(s, ir.ClearRouteCache):
            emit(depth, "h:clearRouteCache()")
        elif isinstance(s, ir.Log):
            emit(depth, f"h:{_LOG[s.level]}({self.ex(s.text)})")
        elif isinstance(s, ir.ExprStmt):
            emit(depth, self.ex(s.value))
        else:
            raise AssertionError(type(s))

    def header_op(self, s: ir.HeaderOp, depth: int) -> None:
        where = f"{s.map}.headers.{s.op}"
        call = {"set": "replace", "add": "add", "remove": "remove"}[s.op]
        simple = (ir.Const, ir.Var, ir.ConfigRef)
        opened = False
        name, value = self.ex(s.name), self.ex(s.value) if s.value is not None else ""
        if (not s.name_checked and not isinstance(s.name, simple)) or (
                s.value is not None and not s.value_checked and not isinstance(s.value, simple)):
            self.emit(depth, "do")
            opened = True
            depth += 1
            tn = self.temp()
            self.emit(depth, f"local {tn} = {name}")
            name = tn
            if s.value is not None:
                tv = self.temp()
                self.emit(depth, f"local {tv} = {value}")
                value = tv
        args = f"{name}, {value}" if s.value is not None else name
        checks: list[tuple[str, str]] = []
        if not s.name_checked:
            checks.append((f"{self.use('valid_name')}({name})", ir.SKIP_NAME.format(op=where)))
        if s.value is not None and not s.value_checked:
            checks.append((f"{self.use('clean')}({value})", ir.SKIP_VALUE.format(op=where)))
        for i, (cond, _) in enumerate(checks):
            self.emit(depth + i, f"if {cond} then")
        self.emit(depth + len(checks), f"hs:{call}({args})")
        for i, (_, text) in reversed(list(enumerate(checks))):
            self.emit(depth + i, "else")
            self.emit(depth + i + 1, f"h:logWarn({_lit(text)})")
            self.emit(depth + i, "end")
        if opened:
            self.emit(depth - 1, "end")

    # -- program --------------------------------------------------------------------------------

    def function(self, fn: Function) -> None:
        if fn.is_callback:
            name = "envoy_on_request" if fn.name == "on_request_headers" else "envoy_on_response"
            self.emit(0, f"function {name}(h)")
            self.emit(1, "local hs = h:headers()")
        else:
            params = ", ".join(["h", "hs", *(f"v_{n}" for n, _ in fn.params)])
            self.emit(0, f"local function f_{fn.name}({params})")
        if fn.locals:
            self.emit(1, "local " + ", ".join(f"v_{n}" for n in fn.locals))
        self.block(fn.body, 1, fn, [])
        self.emit(0, "end")

    def compile(self) -> str:
        body_start = len(self.lines)
        for fn in self.p.helpers():
            self.function(fn)
        for name in self.p.callbacks:
            self.function(self.p.functions[name])
        body = self.lines[body_start:]
        head = [f"-- generated by {GENERATOR} from {_comment(self.p.source)} ({self.p.class_name}); do not edit",
                _PRELUDE]
        if self.p.config is not None:
            for f in self.p.config:
                head.append(f"local c_{f.name} = {self.config_literal(self.config[f.name])}")
        for values, name in self.lists.items():
            head.append(f"local {name} = {{{', '.join(_lit(v) for v in values)}}}")
        texts = {"BAD_STATUS_1": ir.BAD_STATUS.partition("{status}")[0],
                 "BAD_STATUS_2": ir.BAD_STATUS.partition("{status}")[2],
                 "SKIP_RESPOND": ir.SKIP_VALUE.format(op="request.respond")}
        if "respond" in self.used:
            head += [f"local {k} = {_lit(v)}" for k, v in texts.items()]
        for name in self.used:
            head.extend(_RUNTIME[name].splitlines())
        return "\n".join(head + body) + "\n"

    def config_literal(self, value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, (list, tuple)):
            return "{" + ", ".join(_lit(v) for v in value) + "}"
        return _lit(str(value))


def _own_loop_stmts(body: tuple[Stmt, ...]) -> list[Stmt]:
    """Statements of a loop body, not those of nested loops."""
    out: list[Stmt] = []
    for s in body:
        out.append(s)
        if isinstance(s, ir.If):
            out.extend(_own_loop_stmts(s.body))
            out.extend(_own_loop_stmts(s.orelse))
    return out


def _comment(text: str) -> str:
    return "".join(c if 0x20 <= ord(c) < 0x7F else "?" for c in text)


def render_python_filter(program: Program, config: Mapping[str, Any] | str | bytes | None = None) -> str:
    """The Lua source for a checked filter with ``config`` (checked first; compiled in)."""
    from meshfilter.sdk.config import example_config, parse_config

    values: dict[str, Any] = {}
    if program.config is not None:
        values = parse_config(program.config, config, example=example_config(program.config))
    return _Compiler(program, values).compile()


def compile_program(program: Program, config: Mapping[str, Any] | str | bytes | None = None) -> str:
    """:func:`render_python_filter`, then compiled with LuaJIT (a LuaError names the line)."""
    from meshfilter.lua.check import compile_check

    source = render_python_filter(program, config)
    compile_check(source, where=f"Lua generated from {program.source}")
    return source


def build_python_filter(path: str | Path, class_name: str | None = None,
                        config: Mapping[str, Any] | str | bytes | None = None) -> str:
    """Check ``path`` and compile its filter class with ``config`` to a LuaJIT-checked Envoy Lua script."""
    from meshfilter.sdk.checker import check_file

    return compile_program(check_file(path, class_name), config)

