"""The static checker and front end: a filter's Python source (``ast``) to the typed IR.

Everything a backend cannot compile exactly is refused here, before any code is generated, with one
line naming the place: ``canary.py:14:9: while loops are not supported in filters (hint: ...)``
(:class:`FilterSourceError`; line and column are 1-based). Type errors are refused the same way:
calling ``.lower()`` on a ``str | None`` without a ``None`` check, adding ``str`` and ``int``,
using a local before it is assigned on every path.

The checker also proves that every int stays within ``±(2**53 - 1)`` (the range where Wasm i64 and
LuaJIT numbers are both exact), so no backend needs an overflow check at run time; see
:func:`_check_int_bounds`.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from meshfilter.errors import UsageError
from meshfilter.sdk import ir
from meshfilter.sdk.config import CONFIG_INT_MAX
from meshfilter.sdk.ir import (
    BOOL,
    INT,
    LIST,
    NONE,
    OPT_STR,
    REQ_HEADERS,
    REQUEST,
    RESP_HEADERS,
    RESPONSE,
    STR,
    VOID,
    ConfigField,
    Expr,
    Function,
    Program,
    Stmt,
)
from meshfilter.sdk.wire import TCHARS, snake_case

SDK_MODULE = "meshfilter.sdk"
SDK_NAMES = frozenset({"HttpFilter", "Request", "Response", "HeaderName", "HeaderValue"})
_HANDLE_OF_MAP = {"request": REQ_HEADERS, "response": RESP_HEADERS}
_CONFIG_KINDS = {"str": "str", "int": "int", "bool": "bool", "HeaderName": "header_name",
                 "HeaderValue": "header_value"}
_STR_METHODS_HINT = "str has startswith, endswith, removeprefix, removesuffix, lower, upper and strip"
_CONFIG_TYPES = {"str": STR, "header_name": STR, "header_value": STR, "int": INT, "bool": BOOL, "list": LIST}


class FilterSourceError(UsageError):
    """A construct the compiler refuses, at ``file:line:col``."""

    def __init__(self, path: str, pos: tuple[int, int], message: str, hint: str) -> None:
        self.path = path
        self.pos = pos
        self.message = message
        super().__init__(message, where=f"{path}:{pos[0]}:{pos[1]}", hint=hint)


# -- entry points -------------------------------------------------------------------------------------

def check_source(source: str, path: str = "filter.py", class_name: str | None = None, *,
                 strict: bool = True) -> Program:
    """Check ``source`` and return the IR of its filter class (``class_name``, or the only one).

    ``strict`` checks the whole module (what ``meshfilter wasm build python`` compiles); without it
    only the class and the module-level names it uses are checked (a filter defined in a test file).
    """
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        raise FilterSourceError(path, (exc.lineno or 1, exc.offset or 1), f"not valid Python: {exc.msg}",
                                "fix the syntax error") from None
    return _Module(path, tree, strict).program(class_name)


def check_file(path: str | Path, class_name: str | None = None) -> Program:
    p = Path(path)
    try:
        source = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no such file {str(p)!r}", where="source", hint="give the path of the filter's .py file") \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {str(p)!r}: {exc.__class__.__name__}", where="source") from None
    return check_source(source, str(path), class_name)


def parse_target(target: str) -> tuple[str, str | None]:
    """``FILE.py[:Class]`` -> (file, class or None)."""
    path, sep, cls = target.rpartition(":")
    if sep and path and cls.isidentifier():
        return path, cls
    return target, None


_CACHE: dict[type, Program] = {}


def check_class(cls: type) -> Program:
    """The IR of a filter class defined in a file (cached per class); checks only what the class uses."""
    if cls in _CACHE:
        return _CACHE[cls]
    module = sys.modules.get(cls.__module__)
    filename = getattr(module, "__file__", None)
    if not filename or not Path(filename).is_file():
        raise UsageError(f"cannot find the source file of filter class {cls.__name__}", where="filter",
                         hint="define the filter class in a .py file")
    source = Path(filename).read_text(encoding="utf-8")
    program = check_source(source, _display_path(filename), cls.__qualname__, strict=False)
    _CACHE[cls] = program
    return program


def _display_path(filename: str) -> str:
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd()))
    except ValueError:
        return filename


# -- module level -------------------------------------------------------------------------------------

@dataclass
class _Constant:
    type: str
    value: Any
    node: ast.AST


class _Module:
    def __init__(self, path: str, tree: ast.Module, strict: bool) -> None:
        self.path = path
        self.tree = tree
        self.strict = strict
        self.constants: dict[str, _Constant] = {}
        self.sdk_names: dict[str, str] = {}  # local name -> SDK name
        self.classes: dict[str, ast.ClassDef] = {}
        self.not_constant: dict[str, tuple[ast.AST, str]] = {}
        self._scan()

    def fail(self, node: ast.AST, message: str, hint: str) -> NoReturn:
        raise FilterSourceError(self.path, _pos(node), message, hint)

    def _scan(self) -> None:
        assigned: set[str] = set()
        for i, stmt in enumerate(self.tree.body):
            if i == 0 and _is_docstring(stmt):
                continue
            if isinstance(stmt, ast.ImportFrom):
                if stmt.module == "__future__":
                    continue
                if stmt.module == SDK_MODULE and stmt.level == 0:
                    for alias in stmt.names:
                        if alias.name in SDK_NAMES:
                            self.sdk_names[alias.asname or alias.name] = alias.name
                        elif self.strict:
                            self.fail(stmt, f"filters cannot use {alias.name} from meshfilter.sdk",
                                      f"import from: {', '.join(sorted(SDK_NAMES))}")
                    continue
                if self.strict:
                    self.fail(stmt, "imports other than meshfilter.sdk are not supported in filters",
                              "a filter can only use what meshfilter.sdk gives it")
                continue
            if isinstance(stmt, ast.Import):
                if self.strict:
                    self.fail(stmt, "imports other than meshfilter.sdk are not supported in filters",
                              "write: from meshfilter.sdk import HttpFilter, Request, Response")
                continue
            if isinstance(stmt, ast.ClassDef):
                self.classes[stmt.name] = stmt
                continue
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else \
                    (stmt.target if isinstance(stmt, ast.AnnAssign) else None)
                if not isinstance(target, ast.Name):
                    if self.strict:
                        self.fail(stmt, "module-level assignments must bind one name to a constant",
                                  "write NAME = \"text\", NAME = 10 or NAME = [\"a\", \"b\"]")
                    continue
                if target.id in assigned:
                    self.not_constant[target.id] = (stmt, f"module-level name {target.id} is assigned more than "
                                                    "once; filters only read constants")
                    self.constants.pop(target.id, None)
                    if self.strict:
                        self.fail(stmt, self.not_constant[target.id][1], "assign each module-level constant once")
                    continue
                assigned.add(target.id)
                const = self._constant(stmt.value) if stmt.value is not None else None
                if const is None:
                    self.not_constant[target.id] = (stmt, f"module-level name {target.id} is not a constant")
                    if self.strict:
                        self.fail(stmt.value or stmt, "module-level names must be constants (str, int, bool or a "
                                  "list of str literals)", "compute it inside a method instead")
                    continue
                self.constants[target.id] = const
                continue
            if isinstance(stmt, ast.Expr) and _is_docstring(stmt):
                continue
            if self.strict:
                self._refuse_stmt(stmt, module_level=True)
        if self.strict:
            for name, cls in self.classes.items():
                if not self._is_filter_class(cls):
                    self.fail(cls, "classes other than Config are not supported in filters",
                              f"{name} must subclass HttpFilter, or be the filter's nested class Config")

    def _refuse_stmt(self, stmt: ast.stmt, *, module_level: bool = False) -> NoReturn:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and module_level:
            self.fail(stmt, "module-level functions are not supported in filters",
                      "make it a method of the filter class (a helper)")
        _refuse_statement(self.path, stmt)

    def _constant(self, node: ast.expr) -> _Constant | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)) and not isinstance(node.value, float):
            value = node.value
            if isinstance(value, bool):
                return _Constant(BOOL, value, node)
            if isinstance(value, str):
                _check_literal_text(self.path, node, value)
                return _Constant(STR, value, node)
            if abs(value) > ir.INT_LIMIT:
                self.fail(node, "int literals beyond 2**53 - 1 are not supported in filters",
                          "ints are exact up to 9007199254740991")
            return _Constant(INT, value, node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self._constant(node.operand)
            if inner is not None and inner.type == INT:
                return _Constant(INT, -inner.value, node)
            return None
        if isinstance(node, (ast.List, ast.Tuple)):
            values = []
            for elt in node.elts:
                if not (isinstance(elt, ast.Constant) and isinstance(elt.value, str)):
                    return None
                _check_literal_text(self.path, elt, elt.value)
                values.append(elt.value)
            return _Constant(LIST, tuple(values), node)
        return None

    def _is_filter_class(self, cls: ast.ClassDef) -> bool:
        return any(isinstance(b, ast.Name) and self.sdk_names.get(b.id) == "HttpFilter" for b in cls.bases)

    def program(self, class_name: str | None) -> Program:
        candidates = {n: c for n, c in self.classes.items() if self._is_filter_class(c)}
        if class_name is not None:
            if class_name not in self.classes:
                raise UsageError(f"{self.path} has no class {class_name}", where="source",
                                 hint=f"filter classes here: {', '.join(candidates) or 'none'}")
            cls = self.classes[class_name]
            if class_name not in candidates:
                self.fail(cls, f"{class_name} does not subclass HttpFilter",
                          "write: from meshfilter.sdk import HttpFilter; class X(HttpFilter): ...")
        else:
            if not candidates:
                raise UsageError(f"{self.path} defines no HttpFilter subclass", where="source",
                                 hint="write: from meshfilter.sdk import HttpFilter; class X(HttpFilter): ...")
            if len(candidates) > 1:
                raise UsageError(f"{self.path} defines {len(candidates)} filter classes", where="source",
                                 hint=f"choose one: {self.path}:{next(iter(candidates))}")
            cls = next(iter(candidates.values()))
        return _Class(self, cls).program()


def _check_literal_text(path: str, node: ast.AST, value: str) -> None:
    if not value.isascii():
        raise FilterSourceError(path, _pos(node), "non-ASCII text in a string literal is not supported in filters",
                                "header bytes are compared one by one; put such text in the Config")


_REFUSED_STATEMENTS: dict[type, tuple[str, str]] = {
    ast.While: ("while loops are not supported in filters", "loop over a list with for"),
    ast.Try: ("exceptions are not supported in filters", "check values with if instead"),
    ast.Raise: ("exceptions are not supported in filters", "log with self.log.error() and return"),
    ast.With: ("with statements are not supported in filters", "filters have no resources to manage"),
    ast.AsyncWith: ("async code is not supported in filters", "filters are synchronous"),
    ast.AsyncFor: ("async code is not supported in filters", "filters are synchronous"),
    ast.AsyncFunctionDef: ("async code is not supported in filters", "filters are synchronous"),
    ast.FunctionDef: ("nested functions are not supported in filters", "make it a method of the filter class"),
    ast.ClassDef: ("classes other than Config are not supported in filters",
                   "only the filter class and its nested Config are allowed"),
    ast.Import: ("imports other than meshfilter.sdk are not supported in filters",
                 "import at the top of the file, from meshfilter.sdk"),
    ast.ImportFrom: ("imports other than meshfilter.sdk are not supported in filters",
                     "import at the top of the file, from meshfilter.sdk"),
    ast.Global: ("globals that change are not supported in filters", "use a local variable"),
    ast.Nonlocal: ("nonlocal is not supported in filters", "use a local variable"),
    ast.Delete: ("del is not supported in filters", "assign a new value instead"),
    ast.Assert: ("assert is not supported in filters", "check with if and log with self.log.error()"),
    ast.Match: ("match statements are not supported in filters", "use if/elif/else"),
}
if sys.version_info >= (3, 11):
    _REFUSED_STATEMENTS[ast.TryStar] = ("exceptions are not supported in filters", "check values with if instead")


def _refuse_statement(path: str, stmt: ast.stmt) -> NoReturn:
    message, hint = _REFUSED_STATEMENTS.get(type(stmt), (f"{type(stmt).__name__} statements are not supported in "
                                                          "filters", "see docs/sdk.md for what filters can use"))
    raise FilterSourceError(path, _pos(stmt), message, hint)


def _pos(node: ast.AST) -> tuple[int, int]:
    return (getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1)


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


# -- class level -------------------------------------------------------------------------------------

@dataclass
class _Sig:
    name: str
    params: list[tuple[str, str]]  # value params
    handle: str
    handle_param: str
    returns: str
    node: ast.FunctionDef


class _Class:
    def __init__(self, module: _Module, cls: ast.ClassDef) -> None:
        self.m = module
        self.cls = cls
        self.path = module.path
        self.root_id = _snake(cls.name)
        self.config: tuple[ConfigField, ...] | None = None
        self.methods: dict[str, ast.FunctionDef] = {}

    def fail(self, node: ast.AST, message: str, hint: str) -> NoReturn:
        self.m.fail(node, message, hint)

    def program(self) -> Program:
        cls = self.cls
        _check_identifiers(self.path, cls)
        if cls.decorator_list:
            self.fail(cls.decorator_list[0], "decorators are not supported in filters", "remove the decorator")
        if len(cls.bases) != 1 or cls.keywords:
            self.fail(cls, "a filter class has exactly one base, HttpFilter", f"write: class {cls.name}(HttpFilter):")
        for stmt in cls.body:
            if _is_docstring(stmt) or isinstance(stmt, ast.Pass):
                continue
            if isinstance(stmt, ast.ClassDef):
                if stmt.name != "Config":
                    self.fail(stmt, "classes other than Config are not supported in filters",
                              "the only nested class is Config")
                if self.config is not None:
                    self.fail(stmt, "Config is defined twice", "define one Config class")
                self.config = self._config(stmt)
                continue
            if isinstance(stmt, ast.FunctionDef):
                if stmt.name in self.methods:
                    self.fail(stmt, f"method {stmt.name} is defined twice", "define each method once")
                self.methods[stmt.name] = stmt
                continue
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else \
                    (stmt.target if isinstance(stmt, ast.AnnAssign) else None)
                if isinstance(target, ast.Name) and target.id == "root_id":
                    value = stmt.value
                    if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                        self.fail(value or stmt, "root_id must be a string literal", 'write root_id = "my_filter"')
                    raw = value.value.encode("utf-8", "surrogatepass")
                    if not raw or len(raw) > 256 or b"\0" in raw:
                        self.fail(value, "root_id must be 1 to 256 bytes without NUL", 'write root_id = "my_filter"')
                    self.root_id = value.value
                    continue
                self.fail(stmt, "class attributes other than root_id are not supported in filters",
                          "put settings in the Config, constants at module level")
            self._refuse_member(stmt)
        sigs: dict[str, _Sig] = {}
        for name, fn in self.methods.items():
            sigs[name] = self._signature(fn)
        if not any(n in sigs for n in ir.CALLBACKS):
            self.fail(cls, f"{cls.name} defines neither on_request_headers nor on_response_headers",
                      "define on_request_headers(self, request: Request) -> None")
        functions: dict[str, Function] = {}
        for name, sig in sigs.items():
            functions[name] = _Body(self, sig, sigs).function()
        _check_recursion(self, functions)
        _check_respond_tails(self, functions)
        program = Program(source=self.path, class_name=cls.name, root_id=self.root_id,
                          log_name=_snake(cls.name).replace("_", "-"), config=self.config, functions=functions)
        _check_int_bounds(self, program)
        return program

    def _refuse_member(self, stmt: ast.stmt) -> NoReturn:
        if isinstance(stmt, ast.AsyncFunctionDef):
            self.fail(stmt, "async code is not supported in filters", "filters are synchronous")
        if isinstance(stmt, ast.Expr):
            self.fail(stmt, "statements in the class body are not supported in filters", "move it into a method")
        _refuse_statement(self.path, stmt)

    # -- Config -------------------------------------------------------------------------------------

    def _config(self, node: ast.ClassDef) -> tuple[ConfigField, ...]:
        if node.bases or node.keywords or node.decorator_list:
            self.fail(node, "Config is a plain class of annotated fields", "write: class Config:")
        fields: list[ConfigField] = []
        for stmt in node.body:
            if _is_docstring(stmt) or isinstance(stmt, ast.Pass):
                continue
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                self.fail(stmt, "Config holds annotated fields only", "write: header: str  or  status: int = 403")
            name = stmt.target.id
            if name.startswith("_"):
                self.fail(stmt.target, "Config field names may not start with _", "rename the field")
            if any(f.name == name for f in fields):
                self.fail(stmt, f"Config field {name} is declared twice", "declare each field once")
            kind = self._field_kind(stmt.annotation)
            default: Any = None
            if stmt.value is not None:
                default = self._field_default(kind, stmt.value, name)
            fields.append(ConfigField(name, kind, stmt.value is None, default))
        return tuple(fields)

    def _field_kind(self, ann: ast.expr) -> str:
        if isinstance(ann, ast.Name):
            kind = _CONFIG_KINDS.get(ann.id if ann.id not in self.m.sdk_names else self.m.sdk_names[ann.id])
            if kind is not None:
                return kind
            if ann.id == "float":
                self.fail(ann, "float values are not supported in filters", "use int")
            if ann.id == "dict":
                self.fail(ann, "dicts are not supported in filters", "use several fields, or a list[str]")
        if (isinstance(ann, ast.Subscript) and isinstance(ann.value, ast.Name) and ann.value.id == "list"
                and isinstance(ann.slice, ast.Name) and ann.slice.id == "str"):
            return "list"
        if isinstance(ann, ast.Subscript) and isinstance(ann.value, ast.Name) and ann.value.id == "dict":
            self.fail(ann, "dicts are not supported in filters", "use several fields, or a list[str]")
        self.fail(ann, f"Config field type {ast.unparse(ann)} is not supported",
                  "use str, int, bool, list[str], HeaderName or HeaderValue")

    def _field_default(self, kind: str, value: ast.expr, name: str) -> Any:
        const = self.m._constant(value)
        if isinstance(value, ast.Name) and value.id in self.m.constants:
            const = self.m.constants[value.id]
        want = _CONFIG_TYPES[kind]
        if const is None or const.type != want:
            self.fail(value, f"the default of {name} must be a {want} literal",
                      "a default is a constant: \"text\", 10, True or [\"a\"]")
        if kind == "int" and not -CONFIG_INT_MAX - 1 <= const.value <= CONFIG_INT_MAX:
            self.fail(value, f"the default of {name} is out of range", "an int field holds -2**31 .. 2**31 - 1")
        if kind == "header_name":
            if not const.value or any(ord(c) not in TCHARS for c in const.value):
                self.fail(value, f"the default of {name} is not a valid HTTP header name",
                          "use letters, digits and !#$%&'*+-.^_`|~ only")
            return const.value.lower()
        if kind == "header_value" and any(c in const.value for c in "\r\n\0"):
            self.fail(value, f"the default of {name} contains CR, LF or NUL", "remove the control characters")
        if kind == "list" and len(const.value) > ir.LIST_MAX:
            self.fail(value, f"the default of {name} has more than {ir.LIST_MAX} entries", "shorten the list")
        return const.value

    # -- methods ------------------------------------------------------------------------------------

    def _signature(self, fn: ast.FunctionDef) -> _Sig:
        if fn.decorator_list:
            self.fail(fn.decorator_list[0], "decorators are not supported in filters", "remove the decorator")
        a = fn.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults or a.kw_defaults:
            self.fail(fn, "helper parameters are plain positional parameters without defaults",
                      "write def helper(self, name: str) -> bool:")
        if not a.args or a.args[0].arg != "self":
            self.fail(fn, f"{fn.name} must take self first", f"write def {fn.name}(self, ...)")
        if fn.name.startswith("__"):
            self.fail(fn, f"{fn.name} is not supported in filters",
                      "the configuration comes from Config, and filters keep no state")
        if fn.name.startswith("on_") and fn.name not in ir.CALLBACKS:
            self.fail(fn, f"{fn.name} is not a callback filters can define",
                      "callbacks are on_request_headers and on_response_headers; other methods are helpers "
                      "(give them a name not starting with on_ or __)")
        params = a.args[1:]
        if fn.name in ir.CALLBACKS:
            handle = REQUEST if fn.name == "on_request_headers" else RESPONSE
            if len(params) != 1:
                self.fail(fn, f"{fn.name} takes one parameter besides self",
                          f"write def {fn.name}(self, {handle.lower()}: {handle}) -> None:")
            if params[0].annotation is not None and self._type(params[0].annotation) != handle:
                self.fail(params[0].annotation, f"the parameter of {fn.name} is a {handle}",
                          f"annotate it as {handle}")
            if fn.returns is not None and self._type(fn.returns, allow_none=True) != VOID:
                self.fail(fn.returns, f"{fn.name} returns None", "annotate it -> None")
            return _Sig(fn.name, [], handle, params[0].arg, VOID, fn)
        values: list[tuple[str, str]] = []
        handle, handle_param = "", ""
        for p in params:
            if p.annotation is None:
                self.fail(p, f"parameter {p.arg} of helper {fn.name} needs a type annotation",
                          f"write {p.arg}: str (or int, bool, str | None, list[str], Request, Response)")
            t = self._type(p.annotation)
            if t in (REQUEST, RESPONSE):
                if handle:
                    self.fail(p, "a helper takes at most one Request or Response", "pass one of them")
                handle, handle_param = t, p.arg
            else:
                values.append((p.arg, t))
        if fn.returns is None:
            self.fail(fn, f"helper {fn.name} needs a return annotation", f"write def {fn.name}(...) -> bool:")
        returns = self._type(fn.returns, allow_none=True)
        if returns in (REQUEST, RESPONSE):
            self.fail(fn.returns, "helpers cannot return a Request or Response", "return a value")
        return _Sig(fn.name, values, handle, handle_param, returns, fn)

    def _type(self, ann: ast.expr, *, allow_none: bool = False) -> str:
        if isinstance(ann, ast.Constant) and ann.value is None:
            if allow_none:
                return VOID
        elif isinstance(ann, ast.Constant) and isinstance(ann.value, str):
            try:
                inner = ast.parse(ann.value, mode="eval").body
            except SyntaxError:
                self.fail(ann, f"annotation {ann.value!r} is not valid Python", "write str, int, bool ...")
            ast.copy_location(inner, ann)
            for sub in ast.walk(inner):
                ast.copy_location(sub, ann)
            return self._type(inner, allow_none=allow_none)
        elif isinstance(ann, ast.Name):
            name = self.m.sdk_names.get(ann.id, ann.id)
            known = {"str": STR, "int": INT, "bool": BOOL, "Request": REQUEST, "Response": RESPONSE}
            if name in known and (name not in ("Request", "Response") or ann.id in self.m.sdk_names):
                return known[name]
            if name == "float":
                self.fail(ann, "float values are not supported in filters", "use int")
            if name == "dict":
                self.fail(ann, "dicts are not supported in filters", "use str values or a list[str]")
        elif isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
            parts = {ast.unparse(ann.left), ast.unparse(ann.right)}
            if parts == {"str", "None"}:
                return OPT_STR
        elif (isinstance(ann, ast.Subscript) and isinstance(ann.value, ast.Name) and ann.value.id == "list"
              and isinstance(ann.slice, ast.Name) and ann.slice.id == "str"):
            return LIST
        self.fail(ann, f"type {ast.unparse(ann)} is not supported in filters",
                  "use str, int, bool, str | None, list[str], Request or Response")


def _check_identifiers(path: str, cls: ast.ClassDef) -> None:
    """Names become WAT and Lua identifiers: ASCII only."""
    for node in ast.walk(cls):
        for name in (getattr(node, "id", None), getattr(node, "arg", None), getattr(node, "attr", None),
                     node.name if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else None):
            if isinstance(name, str) and not name.isascii():
                raise FilterSourceError(path, _pos(node), f"non-ASCII names are not supported in filters: {name}",
                                        "rename it with ASCII letters, digits and _")


def _snake(name: str) -> str:
    return snake_case(name)


# -- function bodies ----------------------------------------------------------------------------------

@dataclass
class _Env:
    """What is known at one point of a function: definitely assigned names and their current type."""

    types: dict[str, str] = field(default_factory=dict)
    terminated: bool = False

    def copy(self) -> _Env:
        return _Env(dict(self.types), self.terminated)


def _join_type(a: str, b: str) -> str:
    if a == b:
        return a
    if {a, b} <= {STR, NONE, OPT_STR}:
        return OPT_STR
    raise AssertionError((a, b))


def _join(envs: list[_Env]) -> _Env:
    live = [e for e in envs if not e.terminated]
    if not live:
        out = envs[0].copy() if envs else _Env()
        out.terminated = True
        return out
    names = set(live[0].types)
    for e in live[1:]:
        names &= set(e.types)
    types = {}
    for n in names:
        t = live[0].types[n]
        for e in live[1:]:
            t = _join_type(t, e.types[n])
        types[n] = t
    return _Env(types)


def _assigned_names(body: list[ast.stmt]) -> list[str]:
    out: list[str] = []
    for node in body:
        for sub in ast.walk(node):
            target = None
            if isinstance(sub, (ast.Assign,)) and len(sub.targets) == 1:
                target = sub.targets[0]
            elif isinstance(sub, (ast.AnnAssign, ast.AugAssign, ast.For)):
                target = sub.target
            if isinstance(target, ast.Name) and target.id not in out:
                out.append(target.id)
    return out


class _Body:
    def __init__(self, cls: _Class, sig: _Sig, sigs: dict[str, _Sig]) -> None:
        self.c = cls
        self.m = cls.m
        self.sig = sig
        self.sigs = sigs
        self.declared: dict[str, str] = dict(sig.params)
        self.aliases: dict[str, str] = {}  # local name -> handle type (REQ_HEADERS ...)
        if sig.handle:
            self.aliases[sig.handle_param] = sig.handle
        self.locals_ = set(_assigned_names(sig.node.body)) | set(self.declared) | set(self.aliases)
        self.loop_depth = 0

    def fail(self, node: ast.AST, message: str, hint: str) -> NoReturn:
        self.m.fail(node, message, hint)

    def function(self) -> Function:
        env = _Env(dict(self.declared))
        for name in self.aliases:
            env.types[name] = self.aliases[name]
        body, end = self.block(self.sig.node.body, env)
        if not end.terminated and self.sig.returns != VOID:
            self.fail(self.sig.node, f"helper {self.sig.name} can reach its end without returning a "
                      f"{self.sig.returns}", "add a return at the end")
        local_types = {n: t for n, t in self.declared.items() if n not in dict(self.sig.params)}
        return Function(self.sig.name, tuple(self.sig.params), self.sig.handle, self.sig.handle_param,
                        self.sig.returns, tuple(body), local_types, _pos(self.sig.node))

    # -- statements ---------------------------------------------------------------------------------

    def block(self, stmts: list[ast.stmt], env: _Env) -> tuple[list[Stmt], _Env]:
        out: list[Stmt] = []
        for stmt in stmts:
            if env.terminated:
                break  # unreachable code: Python would not run it either
            out.extend(self.stmt(stmt, env))
        return out, env

    def stmt(self, node: ast.stmt, env: _Env) -> list[Stmt]:
        pos = _pos(node)
        if isinstance(node, ast.Pass) or (_is_docstring(node)) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and node.value.value is ...):
            return []
        if isinstance(node, ast.Expr):
            return [self.call_stmt(node.value, env)]
        if isinstance(node, ast.Assign):
            if len(node.targets) != 1 or not isinstance(node.targets[0], (ast.Name, ast.Attribute, ast.Subscript)):
                self.fail(node, "only one name can be assigned at a time", "write one assignment per line")
            return self.assign(node.targets[0], node.value, None, env, node)
        if isinstance(node, ast.AnnAssign):
            if node.value is None:
                self.fail(node, "a declaration needs a value", f"write {ast.unparse(node.target)}: ... = value")
            return self.assign(node.target, node.value, node.annotation, env, node)
        if isinstance(node, ast.AugAssign):
            if not isinstance(node.target, ast.Name):
                self.assign_target_error(node.target)
            if not isinstance(node.op, (ast.Add, ast.Sub)):
                self.fail(node, f"the {_op_text(node.op)}= operator is not supported in filters",
                          "use + or - (str concatenation, int arithmetic)")
            binop = ast.BinOp(left=ast.Name(id=node.target.id, ctx=ast.Load()), op=node.op, right=node.value)
            ast.copy_location(binop, node)
            ast.copy_location(binop.left, node.target)
            return self.assign(node.target, binop, None, env, node)
        if isinstance(node, ast.If):
            cond = self.expr(node.test, env, want_bool=True)
            t_facts, f_facts = self.facts(node.test, env)
            then_env = env.copy()
            then_env.types.update(t_facts)
            body, then_env = self.block(node.body, then_env)
            else_env = env.copy()
            else_env.types.update(f_facts)
            orelse, else_env = self.block(node.orelse, else_env)
            joined = _join([then_env, else_env])
            env.types, env.terminated = joined.types, joined.terminated
            return [ir.If(pos, cond, tuple(body), tuple(orelse))]
        if isinstance(node, ast.For):
            if node.orelse:
                self.fail(node.orelse[0], "for ... else is not supported in filters", "use a flag variable")
            if not isinstance(node.target, ast.Name):
                self.fail(node.target, "a for loop binds one name", "write: for item in self.config.items:")
            iterable = self.expr(node.iter, env)
            if iterable.type != LIST:
                self.fail(node.iter, f"for loops go over a list[str], not a {iterable.type}",
                          "loop over a Config list[str] field or a list of string literals")
            name = node.target.id
            if name in self.aliases:
                self.fail(node.target, f"{name} names a {self.aliases[name]} and cannot be reassigned",
                          "use another name")
            if self.declared.get(name, STR) != STR:
                self.fail(node.target, f"{name} is a {self.declared[name]}; the loop gives it str values",
                          "use another name for the loop variable")
            self.declare(name, STR, node.target)
            # names assigned in the body (and the loop variable) may change on every iteration: after
            # the loop they keep their declared type if they were assigned before it, else they may
            # be unassigned (an empty list runs the body zero times)
            changing = set(_assigned_names(node.body)) | {name}
            inner = env.copy()
            for n in changing:
                if n in inner.types:
                    inner.types[n] = self.declared[n]
            inner.types[name] = STR
            self.loop_depth += 1
            body, _ = self.block(node.body, inner)
            self.loop_depth -= 1
            for n in changing:
                if n in env.types:
                    env.types[n] = self.declared[n]
            return [ir.For(pos, name, iterable, tuple(body))]
        if isinstance(node, (ast.Break, ast.Continue)):
            if not self.loop_depth:
                self.fail(node, f"{'break' if isinstance(node, ast.Break) else 'continue'} outside a loop",
                          "use it inside a for loop")
            env.terminated = True
            return [ir.Break(pos) if isinstance(node, ast.Break) else ir.Continue(pos)]
        if isinstance(node, ast.Return):
            env.terminated = True
            if self.sig.returns == VOID:
                if node.value is not None and not (isinstance(node.value, ast.Constant) and node.value.value is None):
                    self.fail(node.value, f"{self.sig.name} returns nothing", "write a bare return")
                return [ir.Return(pos, None)]
            if node.value is None:
                self.fail(node, f"{self.sig.name} must return a {self.sig.returns}", "return a value")
            value = self.expr(node.value, env)
            self.require(value, self.sig.returns, node.value, f"{self.sig.name} returns")
            return [ir.Return(pos, value)]
        _refuse_statement(self.m.path, node)

    def assign_target_error(self, target: ast.expr) -> NoReturn:
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
            self.fail(target, f"assigning to self.{target.attr} is not supported in filters",
                      "filters keep no state between calls; use a local variable")
        if isinstance(target, ast.Attribute):
            self.fail(target, f"assigning to {ast.unparse(target)} is not supported in filters",
                      "request and response fields are read only; change headers with headers.set()")
        if isinstance(target, ast.Subscript):
            self.fail(target, "indexing and slicing are not supported in filters",
                      "use startswith/endswith, or a Config list[str]")
        self.fail(target, "only one name can be assigned at a time", "write one assignment per line")

    def declare(self, name: str, t: str, node: ast.AST) -> None:
        if name in self.declared:
            return
        if t == NONE:
            self.fail(node, f"the type of {name} is unknown when it starts as None",
                      f"annotate it: {name}: str | None = None")
        self.declared[name] = t

    def assign(self, target: ast.expr, value_node: ast.expr, ann: ast.expr | None, env: _Env,
               node: ast.stmt) -> list[Stmt]:
        if not isinstance(target, ast.Name):
            self.assign_target_error(target)
        name = target.id
        if name == "self":
            self.fail(target, "self cannot be reassigned", "use another name")
        if name == self.sig.handle_param or name in self.aliases:
            self.fail(target, f"{name} names a {self.aliases.get(name, self.sig.handle)} and cannot be reassigned",
                      "use another name")
        # an alias of a handle: h = request.headers
        handle = self.handle_of(value_node, env)
        if handle is not None:
            if name in self.declared:
                self.fail(target, f"{name} holds a value and cannot name the {handle}", "use another name")
            self.aliases[name] = handle
            env.types[name] = handle
            return []
        value = self.expr(value_node, env)
        if value.type in ir.HANDLE_TYPES:
            self.fail(value_node, f"a {value.type} cannot be stored in a variable", "use it directly")
        if ann is not None:
            t = self.c._type(ann)
            if t in (REQUEST, RESPONSE):
                self.fail(ann, "a Request or Response cannot be stored in a variable", "use the parameter")
            if name in self.declared and self.declared[name] != t:
                self.fail(ann, f"{name} is already a {self.declared[name]}", "declare each variable once")
            self.declared[name] = t
        self.declare(name, value.type, target)
        self.require(value, self.declared[name], value_node, f"{name} is a {self.declared[name]};")
        env.types[name] = value.type if value.type != NONE or self.declared[name] == OPT_STR else NONE
        return [ir.Assign(_pos(node), name, value)]

    def handle_of(self, node: ast.expr, env: _Env) -> str | None:
        """The handle type an expression names (request.headers -> REQ_HEADERS ...), or None."""
        if isinstance(node, ast.Name) and node.id in self.aliases:
            if node.id not in env.types:
                self.fail(node, f"{node.id} may be used before it is assigned", "assign it on every path first")
            return self.aliases[node.id]
        if isinstance(node, ast.Attribute) and node.attr == "headers":
            base = self.handle_of(node.value, env)
            if base == REQUEST:
                return REQ_HEADERS
            if base == RESPONSE:
                return RESP_HEADERS
        return None

    def require(self, value: Expr, want: str, node: ast.AST, what: str) -> None:
        if value.type == want or (want == OPT_STR and value.type in (STR, NONE)):
            return
        if value.type == OPT_STR and want == STR:
            self.fail(node, f"{what} a str, but this value may be None",
                      f"check `{ast.unparse(node)} is not None` first")
        self.fail(node, f"{what} a {want}, not a {value.type}", "convert it (str(n)) or use another variable")

    def call_stmt(self, node: ast.expr, env: _Env) -> Stmt:
        pos = _pos(node)
        if not isinstance(node, ast.Call):
            self.expr(node, env)  # refuses what is not supported at all
            self.fail(node, "this expression does nothing", "remove it, or assign its value")
        if node.keywords and not self.is_respond(node, env):
            self.fail(node.keywords[0], "keyword arguments are not supported here",
                      "pass the arguments in order")
        f = node.func
        if isinstance(f, ast.Attribute):
            handle = self.handle_of(f.value, env)
            if handle in (REQ_HEADERS, RESP_HEADERS) and f.attr in ("set", "add", "remove"):
                want = 1 if f.attr == "remove" else 2
                if len(node.args) != want:
                    self.fail(node, f"headers.{f.attr}() takes {want} argument{'s' if want > 1 else ''}",
                              "headers.set(name, value), headers.add(name, value), headers.remove(name)")
                name = self.header_name_arg(node.args[0], env)
                value = None
                if want == 2:
                    value = self.expr(node.args[1], env)
                    self.require(value, STR, node.args[1], f"headers.{f.attr}() takes")
                mp = "request" if handle == REQ_HEADERS else "response"
                return ir.HeaderOp(pos, mp, f.attr, name, value, self.name_checked(name),
                                   value is None or self.value_checked(value))
            if handle == REQUEST and f.attr == "respond":
                return self.respond(node, env)
            if handle == REQUEST and f.attr == "clear_route_cache":
                if node.args:
                    self.fail(node, "clear_route_cache() takes no arguments", "call request.clear_route_cache()")
                return ir.ClearRouteCache(pos)
            if (isinstance(f.value, ast.Attribute) and f.value.attr == "log" and isinstance(f.value.value, ast.Name)
                    and f.value.value.id == "self"):
                level = f.attr if f.attr in ir.LOG_LEVELS else None
                if level is None:
                    self.fail(f, f"self.log has no {f.attr}()", "use self.log.debug/info/warn/error(text)")
                if len(node.args) != 1:
                    self.fail(node, f"self.log.{f.attr}() takes one str", f"write self.log.{f.attr}(f\"...\")")
                text = self.expr(node.args[0], env)
                self.require(text, STR, node.args[0], f"self.log.{f.attr}() takes")
                return ir.Log(pos, level, text)
        call = self.expr(node, env, statement=True)
        if not isinstance(call, ir.CallHelper):
            self.fail(node, "this expression does nothing", "remove it, or assign its value")
        return ir.ExprStmt(pos, call)

    def is_respond(self, node: ast.Call, env: _Env) -> bool:
        f = node.func
        return isinstance(f, ast.Attribute) and f.attr == "respond" and self.handle_of(f.value, env) == REQUEST

    def header_name_arg(self, node: ast.expr, env: _Env) -> Expr:
        name = self.expr(node, env)
        self.require(name, STR, node, "a header name is")
        if isinstance(name, ir.Const):
            assert isinstance(name.value, str)
            if not name.value or any(ord(c) not in TCHARS for c in name.value):
                self.fail(node, f"{name.value!r} is not a valid HTTP header name",
                          "use letters, digits and !#$%&'*+-.^_`|~ only (pseudo-headers are read through "
                          "request.path, request.method ...)")
            return ir.Const(STR, name.pos, name.value.lower())
        return name

    def name_checked(self, name: Expr) -> bool:
        return isinstance(name, ir.Const) or (isinstance(name, ir.ConfigRef) and self.field_kind(name) == "header_name")

    def value_checked(self, value: Expr) -> bool:
        if isinstance(value, ir.Const):
            return True
        return isinstance(value, ir.ConfigRef) and self.field_kind(value) in ("header_name", "header_value")

    def field_kind(self, ref: ir.ConfigRef) -> str:
        assert self.c.config is not None
        return next(f.kind for f in self.c.config if f.name == ref.field)

    def respond(self, node: ast.Call, env: _Env) -> Stmt:
        args: dict[str, ast.expr] = {}
        names = ("status", "body", "headers")
        if len(node.args) > 3:
            self.fail(node, "respond() takes status, body and headers", 'write request.respond(403, "denied")')
        for i, a in enumerate(node.args):
            args[names[i]] = a
        for kw in node.keywords:
            if kw.arg not in names or kw.arg in args:
                self.fail(kw, f"respond() has no argument {kw.arg!r} (or it is given twice)",
                          "respond(status, body=\"\", headers={\"name\": value})")
            args[kw.arg] = kw.value
        if "status" not in args:
            self.fail(node, "respond() needs a status", "write request.respond(403)")
        status = self.expr(args["status"], env)
        self.require(status, INT, args["status"], "respond() takes a status that is")
        checked = False
        if isinstance(status, ir.Const):
            assert isinstance(status.value, int)
            if not 200 <= status.value <= 599:
                self.fail(args["status"], f"status {status.value} is not in 200..599", "use a status such as 403")
            checked = True
        body: Expr = ir.Const(STR, _pos(node), "")
        if "body" in args:
            body = self.expr(args["body"], env)
            self.require(body, STR, args["body"], "respond() takes a body that is")
        headers: list[tuple[str, Expr]] = []
        h = args.get("headers")
        if h is not None and not (isinstance(h, ast.Constant) and h.value is None):
            if not isinstance(h, ast.Dict):
                self.fail(h, "respond() takes headers as a dict literal", 'write headers={"location": url}')
            for k, v in zip(h.keys, h.values, strict=True):
                if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
                    self.fail(k or v, "respond() header names are string literals", 'write {"location": url}')
                key = k.value.lower()
                if not key or any(ord(c) not in TCHARS for c in key):
                    self.fail(k, f"{k.value!r} is not a valid HTTP header name",
                              "use letters, digits and !#$%&'*+-.^_`|~ only")
                if key in ("content-length", "transfer-encoding"):
                    self.fail(k, f"respond() sets {key} itself", "leave it out")
                if any(key == n for n, _ in headers):
                    self.fail(k, f"header {key} is given twice", "give each header once")
                val = self.expr(v, env)
                self.require(val, STR, v, f"the value of {key} is")
                headers.append((key, val))
        return ir.Respond(_pos(node), status, body, tuple(headers), checked)

    # -- narrowing ----------------------------------------------------------------------------------

    def facts(self, node: ast.expr, env: _Env) -> tuple[dict[str, str], dict[str, str]]:
        """(types when ``node`` is true, types when it is false) for optional str names."""
        def optional(n: ast.expr) -> str | None:
            if isinstance(n, ast.Name) and env.types.get(n.id) in (OPT_STR, STR, NONE) and \
                    self.declared.get(n.id) == OPT_STR:
                return n.id
            return None

        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            left, right, op = node.left, node.comparators[0], node.ops[0]
            if isinstance(right, ast.Constant) and right.value is None and isinstance(op, (ast.Is, ast.IsNot)):
                name = optional(left)
                if name:
                    none, some = {name: NONE}, {name: STR}
                    return (none, some) if isinstance(op, ast.Is) else (some, none)
            if isinstance(op, ast.Eq):
                for a, b in ((left, right), (right, left)):
                    name = optional(a)
                    if name and isinstance(b, ast.Constant) and isinstance(b.value, str):
                        return {name: STR}, {}
        if isinstance(node, ast.Name):
            name = optional(node)
            if name:
                return {name: STR}, {}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            t, f = self.facts(node.operand, env)
            return f, t
        if isinstance(node, ast.BoolOp):
            inner = env.copy()
            t_all: dict[str, str] = {}
            f_all: dict[str, str] = {}
            for v in node.values:
                t, f = self.facts(v, inner)
                if isinstance(node.op, ast.And):
                    t_all.update(t)
                    inner.types.update(t)
                else:
                    f_all.update(f)
                    inner.types.update(f)
            return (t_all, {}) if isinstance(node.op, ast.And) else ({}, f_all)
        return {}, {}

    # -- expressions --------------------------------------------------------------------------------

    def expr(self, node: ast.expr, env: _Env, *, want_bool: bool = False, statement: bool = False) -> Expr:
        e = self._expr(node, env, want_bool, statement)
        if want_bool and e.type != BOOL:
            if e.type in (STR, OPT_STR, INT, LIST):
                return ir.Truthy(BOOL, e.pos, e)
            if e.type == NONE:
                return ir.Const(BOOL, e.pos, False)
            self.fail(node, f"a {e.type} cannot be used as a condition", "compare it with something")
        return e

    def _expr(self, node: ast.expr, env: _Env, want_bool: bool, statement: bool) -> Expr:
        pos = _pos(node)
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node, env)
        if isinstance(node, ast.JoinedStr):
            return self.fstring(node, env)
        if isinstance(node, ast.BinOp):
            return self.binop(node, env)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                inner = self.expr(node.operand, env, want_bool=True)
                return ir.Not(BOOL, pos, inner)
            if isinstance(node.op, ast.USub):
                if isinstance(node.operand, ast.Constant) and type(node.operand.value) is int:
                    return self.constant(node.operand, negate=True, at=node)
                inner = self.expr(node.operand, env)
                self.require(inner, INT, node.operand, "unary minus takes")
                return ir.Arith(INT, pos, "-", ir.Const(INT, pos, 0), inner)
            if isinstance(node.op, ast.UAdd):
                inner = self.expr(node.operand, env)
                self.require(inner, INT, node.operand, "unary plus takes")
                return inner
            self.fail(node, "the ~ operator is not supported in filters", "ints support + and - only")
        if isinstance(node, ast.BoolOp):
            values = list(node.values)
            op = "and" if isinstance(node.op, ast.And) else "or"
            scope = env.copy()
            acc = self.expr(values[0], scope, want_bool=want_bool)
            for prev_node, v in zip(values, values[1:], strict=False):
                pt, pf = self.facts(prev_node, scope)
                scope.types.update(pt if op == "and" else pf)
                right = self.expr(v, scope, want_bool=want_bool)
                if not want_bool and (acc.type != BOOL or right.type != BOOL):
                    self.fail(node, f"`{op}` on {acc.type if acc.type != BOOL else right.type} values is only "
                              "supported in conditions", "write an if statement that assigns the value")
                acc = ir.BoolOp(BOOL, pos, op, acc, right)
            return acc
        if isinstance(node, ast.Compare):
            return self.compare(node, env)
        if isinstance(node, ast.Call):
            return self.call(node, env, statement)
        if isinstance(node, ast.Attribute):
            return self.attribute(node, env)
        if isinstance(node, (ast.List, ast.Tuple)):
            const = self.m._constant(node)
            if const is None or const.type != LIST:
                self.fail(node, "lists can only hold string literals in filters",
                          'write ["GET", "HEAD"], or use a Config list[str]')
            return ir.ListConst(LIST, pos, const.value)
        refusals: dict[type, tuple[str, str]] = {
            ast.Dict: ("dicts are not supported in filters", "use if/elif, or a Config field per value"),
            ast.Set: ("sets are not supported in filters", "use a list of string literals"),
            ast.Subscript: ("indexing and slicing are not supported in filters",
                            "use startswith/endswith, or loop over a list with for"),
            ast.Lambda: ("lambda is not supported in filters", "write a helper method"),
            ast.IfExp: ("conditional expressions (x if c else y) are not supported in filters",
                        "use an if statement"),
            ast.ListComp: ("comprehensions are not supported in filters", "use a for loop"),
            ast.SetComp: ("comprehensions are not supported in filters", "use a for loop"),
            ast.DictComp: ("comprehensions are not supported in filters", "use a for loop"),
            ast.GeneratorExp: ("comprehensions are not supported in filters", "use a for loop"),
            ast.NamedExpr: ("the := operator is not supported in filters", "assign on its own line"),
            ast.Await: ("async code is not supported in filters", "filters are synchronous"),
            ast.Yield: ("generators are not supported in filters", "return a value"),
            ast.YieldFrom: ("generators are not supported in filters", "return a value"),
            ast.Starred: ("* unpacking is not supported in filters", "pass arguments one by one"),
        }
        message, hint = refusals.get(type(node), (f"{type(node).__name__} expressions are not supported in filters",
                                                  "see docs/sdk.md for what filters can use"))
        self.fail(node, message, hint)

    def constant(self, node: ast.Constant, *, negate: bool = False, at: ast.AST | None = None) -> Expr:
        pos = _pos(at or node)
        v = node.value
        if v is None:
            return ir.Const(NONE, pos, None)
        if isinstance(v, bool):
            return ir.Const(BOOL, pos, v)
        if isinstance(v, int):
            v = -v if negate else v
            if abs(v) > ir.INT_LIMIT:
                self.fail(at or node, "int literals beyond 2**53 - 1 are not supported in filters",
                          "ints are exact up to 9007199254740991")
            return ir.Const(INT, pos, v)
        if isinstance(v, str):
            _check_literal_text(self.m.path, node, v)
            return ir.Const(STR, pos, v)
        if isinstance(v, float):
            self.fail(node, "float values are not supported in filters", "use int")
        if isinstance(v, bytes):
            self.fail(node, "bytes literals are not supported in filters", "use str")
        self.fail(node, f"{type(v).__name__} values are not supported in filters", "use str, int or bool")

    def name(self, node: ast.Name, env: _Env) -> Expr:
        pos = _pos(node)
        if node.id in self.locals_:
            if node.id not in env.types:
                self.fail(node, f"{node.id} may be used before it is assigned", "assign it on every path first")
            t = env.types[node.id]
            if t in ir.HANDLE_TYPES:
                self.fail(node, f"{node.id} is a {t}, not a value", "use one of its fields or methods")
            return ir.Var(t, pos, node.id)
        const = self.m.constants.get(node.id)
        if const is not None:
            if const.type == LIST:
                return ir.ListConst(LIST, pos, const.value)
            return ir.Const(const.type, pos, const.value)
        if node.id in self.m.not_constant:
            self.fail(node, self.m.not_constant[node.id][1], "filters read module-level constants only; "
                      "assign it once to a literal")
        if node.id == "self":
            self.fail(node, "self can only be used as self.config, self.log or self.helper()",
                      "read self.config.<field>")
        if node.id in ("float", "dict", "set", "tuple", "int", "bool", "list"):
            self.fail(node, f"{node.id}() is not supported in filters", "filters can call len() and str()")
        self.fail(node, f"unknown name {node.id}", "define it as a module-level constant or a local variable")

    def fstring(self, node: ast.JoinedStr, env: _Env) -> Expr:
        parts: list[Expr] = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(self.constant(v))
                continue
            assert isinstance(v, ast.FormattedValue)
            if v.conversion != -1 or v.format_spec is not None:
                self.fail(v, "format specs and conversions in f-strings are not supported in filters",
                          "write {value} only")
            inner = self.expr(v.value, env)
            if inner.type == INT:
                parts.append(ir.IntToStr(STR, _pos(v.value), inner))
            elif inner.type == STR:
                parts.append(inner)
            elif inner.type == OPT_STR:
                self.fail(v.value, "f-strings take str and int values, but this value may be None",
                          f"check `{ast.unparse(v.value)} is not None` first")
            else:
                self.fail(v.value, f"f-strings take str and int values, not {inner.type}",
                          "convert it to str first")
        return _concat(_pos(node), parts)

    def binop(self, node: ast.BinOp, env: _Env) -> Expr:
        pos = _pos(node)
        if not isinstance(node.op, (ast.Add, ast.Sub)):
            self.fail(node, f"the {_op_text(node.op)} operator is not supported in filters",
                      "use + or - (str concatenation, int arithmetic)")
        left = self.expr(node.left, env)
        right = self.expr(node.right, env)
        if left.type == INT and right.type == INT:
            return ir.Arith(INT, pos, "+" if isinstance(node.op, ast.Add) else "-", left, right)
        if isinstance(node.op, ast.Add) and left.type == STR and right.type == STR:
            return _concat(pos, [left, right])
        if OPT_STR in (left.type, right.type) and {left.type, right.type} <= {STR, OPT_STR}:
            bad = node.left if left.type == OPT_STR else node.right
            self.fail(bad, "cannot add a value that may be None", f"check `{ast.unparse(bad)} is not None` first")
        if {left.type, right.type} == {STR, INT}:
            self.fail(node, "cannot add str and int", "use str(n) or an f-string")
        self.fail(node, f"cannot {'add' if isinstance(node.op, ast.Add) else 'subtract'} {left.type} and "
                  f"{right.type}", "+ joins two str or adds two int; - subtracts ints")

    def compare(self, node: ast.Compare, env: _Env) -> Expr:
        pos = _pos(node)
        if len(node.ops) != 1:
            self.fail(node, "chained comparisons are not supported in filters", "write a < b and b < c")
        op, right_node = node.ops[0], node.comparators[0]
        if isinstance(op, (ast.In, ast.NotIn)):
            negate = isinstance(op, ast.NotIn)
            handle = self.handle_of(right_node, env)
            needle = self.expr(node.left, env)
            if handle in (REQ_HEADERS, RESP_HEADERS):
                self.require(needle, STR, node.left, "`in headers` takes a header name that is")
                name = self.header_name_arg(node.left, env) if isinstance(needle, ir.Const) else needle
                return ir.Contains(BOOL, pos, "headers", name, None, "request" if handle == REQ_HEADERS
                                   else "response", negate)
            hay = self.expr(right_node, env)
            if hay.type == OPT_STR:
                self.fail(right_node, "`in` on a value that may be None",
                          f"check `{ast.unparse(right_node)} is not None` first")
            if hay.type not in (STR, LIST):
                self.fail(right_node, f"`in` needs a str or a list[str] on the right, not a {hay.type}",
                          "test a substring of a str, or membership in a list[str]")
            self.require(needle, STR, node.left, "`in` takes a left side that is")
            return ir.Contains(BOOL, pos, "str" if hay.type == STR else "list", needle, hay, "", negate)
        if isinstance(op, (ast.Is, ast.IsNot)):
            if not (isinstance(right_node, ast.Constant) and right_node.value is None):
                self.fail(node, "`is` is only supported with None", "compare values with ==")
            value = self.expr(node.left, env)
            if value.type not in (STR, OPT_STR, NONE):
                self.fail(node.left, f"a {value.type} is never None", "compare it with ==")
            return ir.IsNone(BOOL, pos, value, isinstance(op, ast.IsNot))
        left = self.expr(node.left, env)
        right = self.expr(right_node, env)
        sym = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}[type(op)]
        if sym in ("==", "!="):
            if NONE in (left.type, right.type):
                self.fail(node, f"compare with None using `is{' not' if sym == '!=' else ''} None`",
                          f"write x is{' not' if sym == '!=' else ''} None")
            strs = {STR, OPT_STR}
            if (left.type in strs and right.type in strs) or (left.type == right.type and left.type in (INT, BOOL)):
                return ir.Compare(BOOL, pos, sym, left, right)
            self.fail(node, f"cannot compare {left.type} with {right.type}", "compare values of one type")
        if left.type == INT and right.type == INT:
            return ir.Compare(BOOL, pos, sym, left, right)
        self.fail(node, f"{sym} compares ints only, not {left.type} and {right.type}",
                  "compare strings with == or startswith()")

    def attribute(self, node: ast.Attribute, env: _Env) -> Expr:
        pos = _pos(node)
        handle = self.handle_of(node.value, env)
        if handle == REQUEST and node.attr in ir.REQUEST_ATTRS:
            return ir.Pseudo(STR, pos, ir.REQUEST_ATTRS[node.attr])
        if handle == RESPONSE and node.attr == "status":
            return ir.Status(INT, pos)
        if handle is not None:
            known = {REQUEST: "headers, path, method, authority, scheme", RESPONSE: "headers, status",
                     REQ_HEADERS: "get, set, add, remove", RESP_HEADERS: "get, set, add, remove"}[handle]
            self.fail(node, f"{handle} has no {node.attr}", f"use one of: {known}")
        if isinstance(node.value, ast.Attribute) and node.value.attr == "config" and \
                isinstance(node.value.value, ast.Name) and node.value.value.id == "self":
            if self.c.config is None:
                self.fail(node, f"{self.c.cls.name} has no Config", "add a nested class Config with the field")
            for f in self.c.config:
                if f.name == node.attr:
                    return ir.ConfigRef(_CONFIG_TYPES[f.kind], pos, f.name)
            self.fail(node, f"Config has no field {node.attr}",
                      f"fields: {', '.join(f.name for f in self.c.config) or 'none'}")
        if isinstance(node.value, ast.Name) and node.value.id == "self":
            if node.attr == "config":
                self.fail(node, "self.config is read field by field", "write self.config.<field>")
            if node.attr in self.sigs:
                self.fail(node, f"self.{node.attr} must be called", f"write self.{node.attr}(...)")
            self.fail(node, f"self.{node.attr} is not available in filters",
                      "filters keep no state; use self.config, self.log or a helper")
        value = self.expr(node.value, env)
        self.fail(node, f"a {value.type} has no attribute {node.attr}", "see docs/sdk.md for what values offer")

    def call(self, node: ast.Call, env: _Env, statement: bool) -> Expr:
        pos = _pos(node)
        f = node.func
        if node.keywords:
            self.fail(node.keywords[0], "keyword arguments are not supported here", "pass the arguments in order")
        if isinstance(f, ast.Name) and f.id not in self.locals_:
            if f.id == "len":
                if len(node.args) != 1:
                    self.fail(node, "len() takes one argument", "write len(value)")
                arg = self.expr(node.args[0], env)
                if arg.type == OPT_STR:
                    self.fail(node.args[0], "len() of a value that may be None",
                              f"check `{ast.unparse(node.args[0])} is not None` first")
                if arg.type not in (STR, LIST):
                    self.fail(node.args[0], f"len() takes a str or a list[str], not a {arg.type}",
                              "use len() on text or a list")
                return ir.Len(INT, pos, arg)
            if f.id == "str":
                if len(node.args) != 1:
                    self.fail(node, "str() takes one argument", "write str(n)")
                arg = self.expr(node.args[0], env)
                if arg.type == INT:
                    return ir.IntToStr(STR, pos, arg)
                if arg.type == STR:
                    return arg
                self.fail(node.args[0], f"str() takes an int or a str here, not a {arg.type}",
                          "check for None first" if arg.type == OPT_STR else "use an f-string")
            if f.id in ("float", "dict", "set", "int", "bool", "list", "tuple"):
                self.fail(node, f"{f.id}() is not supported in filters", "filters can call len() and str()")
            if f.id in ("print", "open", "input", "eval", "exec", "getattr", "setattr", "isinstance", "range",
                        "min", "max", "sorted", "enumerate", "zip", "map", "filter", "any", "all", "abs", "ord",
                        "chr", "repr", "format", "hash", "id", "type", "iter", "next", "sum"):
                self.fail(node, f"{f.id}() is not supported in filters",
                          "filters can call len(), str(), string methods and their own helpers")
            self.fail(node, f"unknown function {f.id}", "filters can call len(), str() and self.helper()")
        if not isinstance(f, ast.Attribute):
            self.fail(node, "this call is not supported in filters", "call len(), str() or self.helper()")
        handle = self.handle_of(f.value, env)
        if handle in (REQ_HEADERS, RESP_HEADERS):
            mp = "request" if handle == REQ_HEADERS else "response"
            if f.attr == "get":
                if len(node.args) != 1:
                    self.fail(node, "headers.get() takes one argument", "write headers.get(\"user-agent\")")
                return ir.HeaderGet(OPT_STR, pos, mp, self.header_name_arg(node.args[0], env))
            if f.attr in ("set", "add", "remove"):
                self.fail(node, f"headers.{f.attr}() returns nothing", "call it as a statement")
            self.fail(f, f"headers have no {f.attr}()", "use get, set, add, remove, or `name in headers`")
        if handle == REQUEST and f.attr in ("respond", "clear_route_cache"):
            self.fail(node, f"request.{f.attr}() returns nothing", "call it as a statement")
        if handle is not None:
            self.fail(f, f"{handle} has no method {f.attr}", "see docs/sdk.md")
        if isinstance(f.value, ast.Attribute) and f.value.attr == "log" and \
                isinstance(f.value.value, ast.Name) and f.value.value.id == "self":
            self.fail(node, f"self.log.{f.attr}() returns nothing", "call it as a statement")
        if isinstance(f.value, ast.Name) and f.value.id == "self":
            return self.helper_call(node, f.attr, env, statement)
        obj = self.expr(f.value, env)
        return self.method(node, f.attr, obj, env)

    def method(self, node: ast.Call, attr: str, obj: Expr, env: _Env) -> Expr:
        pos = _pos(node)
        methods = {"startswith": 1, "endswith": 1, "removeprefix": 1, "removesuffix": 1, "lower": 0, "upper": 0,
                   "strip": 0}
        assert isinstance(node.func, ast.Attribute)
        if obj.type == OPT_STR:
            self.fail(node.func, f"`.{attr}()` on a value that may be None",
                      f"check `{ast.unparse(node.func.value)} is not None` first")
        if obj.type != STR:
            self.fail(node.func, f"a {obj.type} has no method {attr}()", _STR_METHODS_HINT)
        if attr not in methods:
            self.fail(node.func, f"str.{attr}() is not supported in filters", _STR_METHODS_HINT)
        if len(node.args) != methods[attr]:
            self.fail(node, f"str.{attr}() takes {methods[attr]} argument{'s' if methods[attr] != 1 else ''} here",
                      'write s.startswith("prefix")' if methods[attr] else f"write s.{attr}()")
        arg = None
        if node.args:
            arg = self.expr(node.args[0], env)
            if arg.type == LIST:
                self.fail(node.args[0], f"{attr}() with a tuple is not supported in filters",
                          f"write a.{attr}(x) or a.{attr}(y)")
            self.require(arg, STR, node.args[0], f"{attr}() takes")
        return ir.StrMethod(BOOL if attr in ("startswith", "endswith") else STR, pos, attr, obj, arg)

    def helper_call(self, node: ast.Call, name: str, env: _Env, statement: bool) -> Expr:
        pos = _pos(node)
        sig = self.sigs.get(name)
        if sig is None:
            self.fail(node.func, f"{self.c.cls.name} has no method {name}", "define the helper in the class")
        if name in ir.CALLBACKS:
            self.fail(node.func, f"{name} is a callback and cannot be called", "move the shared code into a helper")
        handle_idx = next((i for i, a in enumerate(sig.node.args.args[1:]) if a.arg == sig.handle_param), None) \
            if sig.handle else None
        n_params = len(sig.params) + (1 if sig.handle else 0)
        if len(node.args) != n_params:
            self.fail(node, f"{name}() takes {n_params} argument{'s' if n_params != 1 else ''}",
                      f"see def {name}")
        args: list[Expr] = []
        values = iter(sig.params)
        for i, a in enumerate(node.args):
            if i == handle_idx:
                h = self.handle_of(a, env)
                if h != sig.handle:
                    self.fail(a, f"{name}() takes the {sig.handle} here",
                              f"pass {self.sig.handle_param}" if self.sig.handle == sig.handle else
                              f"{name}() can only be called where a {sig.handle} is available")
                continue
            pname, ptype = next(values)
            value = self.expr(a, env)
            self.require(value, ptype, a, f"parameter {pname} of {name} is")
            args.append(value)
        if sig.returns == VOID and not statement:
            self.fail(node, f"{name}() returns nothing", "call it as a statement")
        return ir.CallHelper(sig.returns, pos, name, tuple(args))


def _concat(pos: tuple[int, int], parts: list[Expr]) -> Expr:
    flat: list[Expr] = []
    for p in parts:
        items = p.parts if isinstance(p, ir.Concat) else (p,)
        for item in items:
            if isinstance(item, ir.Const) and item.value == "":
                continue
            prev = flat[-1] if flat else None
            if isinstance(item, ir.Const) and isinstance(prev, ir.Const):
                assert isinstance(prev.value, str) and isinstance(item.value, str)
                flat[-1] = ir.Const(STR, prev.pos, prev.value + item.value)
            else:
                flat.append(item)
    if not flat:
        return ir.Const(STR, pos, "")
    if len(flat) == 1:
        return flat[0]
    return ir.Concat(STR, pos, tuple(flat))


def _op_text(op: ast.operator) -> str:
    return {ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**", ast.LShift: "<<",
            ast.RShift: ">>", ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^", ast.MatMult: "@",
            ast.Add: "+", ast.Sub: "-"}.get(type(op), "?")


# -- whole-program checks -------------------------------------------------------------------------

def _call_sites(fn: Function) -> Iterator[ir.CallHelper]:
    for s in ir.walk_stmts(fn.body):
        for e in ir.stmt_exprs(s):
            for sub in ir.walk_exprs(e):
                if isinstance(sub, ir.CallHelper):
                    yield sub


def _check_recursion(cls: _Class, functions: dict[str, Function]) -> None:
    state: dict[str, int] = {}

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        for call in _call_sites(functions[name]):
            if state.get(call.name) == 1:
                cycle = stack[stack.index(call.name):] + [name] if call.name in stack else [name]
                who = f"{call.name} calls itself" if call.name == name else \
                    f"{' -> '.join([*cycle, call.name])}"
                raise FilterSourceError(cls.path, call.pos, f"recursion is not supported in filters: {who}",
                                        "rewrite it with a for loop")
            if state.get(call.name) is None:
                visit(call.name, [*stack, name])
        state[name] = 2

    for name in functions:
        if state.get(name) is None:
            visit(name, [])


def _check_respond_tails(cls: _Class, functions: dict[str, Function]) -> None:
    """``request.respond()`` (or a helper that may call it) must be the last thing its callback does."""
    responds: dict[str, bool] = {}

    def may_respond(name: str) -> bool:
        if name not in responds:
            responds[name] = False
            body = functions[name].body
            responds[name] = any(isinstance(s, ir.Respond) for s in ir.walk_stmts(body)) or any(
                may_respond(c.name) for c in _call_sites(functions[name]))
        return responds[name]

    def check(body: tuple[Stmt, ...], tail: bool) -> None:
        for i, s in enumerate(body):
            nxt = body[i + 1] if i + 1 < len(body) else None
            s_tail = (tail and nxt is None) or isinstance(nxt, ir.Return)
            if isinstance(s, ir.Respond) or (isinstance(s, ir.ExprStmt) and may_respond(s.value.name)):
                if not s_tail:
                    what = "request.respond()" if isinstance(s, ir.Respond) else \
                        f"{s.value.name}() may call request.respond() and"
                    raise FilterSourceError(cls.path, s.pos, f"{what} must be the last thing the callback does",
                                            "put return right after it")
            elif isinstance(s, ir.If):
                check(s.body, s_tail)
                check(s.orelse, s_tail)
            elif isinstance(s, ir.For):
                check(s.body, False)
            for e in ir.stmt_exprs(s):
                for sub in ir.walk_exprs(e):
                    if isinstance(sub, ir.CallHelper) and may_respond(sub.name) and not (
                            isinstance(s, ir.ExprStmt) and s.value is sub):
                        raise FilterSourceError(cls.path, sub.pos, f"{sub.name}() may call request.respond() and "
                                                "must be called as a statement", "call it on its own line, then return")

    for fn in functions.values():
        check(fn.body, True)


# -- int bounds ---------------------------------------------------------------------------------------

def _check_int_bounds(cls: _Class, program: Program) -> None:
    """Prove every int expression stays within ±INT_LIMIT, or refuse the first that may not.

    Bounds are magnitudes: literals as written, Config ints 2**31, ``len()`` 2**32, ``response.status``
    STATUS_MAX; ``a + b`` and ``a - b`` add bounds. Inside a ``for`` loop an int variable assigned in the
    loop may only be set to a value that does not depend on such variables, or be stepped by one
    (``n = n + e``): then it grows at most LIST_MAX times per loop level.
    """
    memo: dict[tuple[str, tuple[int, ...]], int] = {}

    def fail(pos: tuple[int, int], message: str, hint: str) -> NoReturn:
        raise FilterSourceError(cls.path, pos, message, hint)

    def check(bound: int, pos: tuple[int, int]) -> int:
        if bound > ir.INT_LIMIT:
            fail(pos, "this int may exceed 2**53 - 1", "ints are exact up to 9007199254740991; keep sums small")
        return bound

    def expr(e: Expr, env: dict[str, int], carried: set[str]) -> int:
        """The bound of ``e`` (0 for non-ints) after checking its sub-expressions."""
        for sub in _children(e):
            expr(sub, env, carried)
        if e.type != INT:
            return 0
        if isinstance(e, ir.Const):
            assert isinstance(e.value, int)
            return abs(e.value)
        if isinstance(e, ir.ConfigRef):
            return CONFIG_INT_MAX + 1
        if isinstance(e, ir.Len):
            return ir.LEN_MAX
        if isinstance(e, ir.Status):
            return ir.STATUS_MAX
        if isinstance(e, ir.Var):
            return env.get(e.name, 0)
        if isinstance(e, ir.Arith):
            return check(expr(e.left, env, carried) + expr(e.right, env, carried), e.pos)
        if isinstance(e, ir.CallHelper):
            fn = program.functions[e.name]
            bounds = tuple(expr(a, env, carried) for a in e.args)
            return analyze(fn, bounds)
        raise AssertionError(type(e))

    def reads(e: Expr, names: set[str]) -> bool:
        return any(isinstance(s, ir.Var) and s.name in names for s in ir.walk_exprs(e)) or any(
            isinstance(s, ir.CallHelper) and any(reads(a, names) for a in s.args) for s in ir.walk_exprs(e))

    def block(body: tuple[Stmt, ...], env: dict[str, int], carried: set[str], steps: dict[str, int],
              resets: dict[str, int]) -> int:
        """Update env; collect per-iteration steps/resets of carried names; return the max returned bound."""
        ret = 0
        for s in body:
            for e in ir.stmt_exprs(s):
                if not isinstance(s, (ir.Assign, ir.Return)):
                    expr(e, env, carried)
            if isinstance(s, ir.Assign):
                if s.value.type != INT:
                    expr(s.value, env, carried)
                    continue
                if s.name in carried:
                    v = s.value
                    if isinstance(v, ir.Arith) and isinstance(v.left, ir.Var) and v.left.name == s.name and \
                            not reads(v.right, carried):
                        step = expr(v.right, env, carried)
                        steps[s.name] = steps.get(s.name, 0) + step
                        env[s.name] = check(env.get(s.name, 0) + step, s.pos)
                        continue
                    if isinstance(v, ir.Arith) and v.op == "+" and isinstance(v.right, ir.Var) and \
                            v.right.name == s.name and not reads(v.left, carried):
                        step = expr(v.left, env, carried)
                        steps[s.name] = steps.get(s.name, 0) + step
                        env[s.name] = check(env.get(s.name, 0) + step, s.pos)
                        continue
                    if reads(v, carried):
                        fail(s.pos, f"{s.name} may grow without bound in this loop",
                             f"inside a loop, step an int by a value that does not change in the loop: "
                             f"{s.name} = {s.name} + 1")
                    resets[s.name] = max(resets.get(s.name, 0), expr(v, env, carried))
                    env[s.name] = resets[s.name]
                    continue
                env[s.name] = expr(s.value, env, carried)
            elif isinstance(s, ir.Return):
                if s.value is not None:
                    ret = max(ret, expr(s.value, env, carried))
            elif isinstance(s, ir.If):
                expr(s.cond, env, carried)
                a, b = dict(env), dict(env)
                ret = max(ret, block(s.body, a, carried, steps, resets), block(s.orelse, b, carried, steps, resets))
                for k in set(a) | set(b):
                    env[k] = max(a.get(k, 0), b.get(k, 0))
            elif isinstance(s, ir.For):
                expr(s.iterable, env, carried)
                inner_carried = carried | {a.name for a in ir.walk_stmts(s.body) if isinstance(a, ir.Assign)
                                           and a.value.type == INT}
                inner_steps: dict[str, int] = {}
                inner_resets: dict[str, int] = {}
                inner = dict(env)
                ret = max(ret, block(s.body, inner, inner_carried, inner_steps, inner_resets))
                for name in inner_carried:
                    growth = ir.LIST_MAX * inner_steps.get(name, 0)
                    env[name] = check(max(env.get(name, 0), inner_resets.get(name, 0)) + growth, s.pos)
                    if name in carried:  # for the enclosing loop, this whole loop is one step (or reset)
                        if growth:
                            steps[name] = steps.get(name, 0) + growth
                        if name in inner_resets:
                            resets[name] = max(resets.get(name, 0), inner_resets[name])
        return ret

    def analyze(fn: Function, bounds: tuple[int, ...]) -> int:
        key = (fn.name, bounds)
        if key not in memo:
            env = {name: b for (name, _), b in zip(fn.params, bounds, strict=True)}
            memo[key] = block(fn.body, env, set(), {}, {})
        return memo[key]

    for fn in program.functions.values():
        if fn.is_callback:  # helpers are checked at every call, with the bounds of the arguments
            analyze(fn, ())


def _children(e: Expr) -> list[Expr]:
    out: list[Expr] = []
    for value in vars(e).values():
        if isinstance(value, Expr):
            out.append(value)
        elif isinstance(value, tuple):
            out.extend(v for v in value if isinstance(v, Expr))
    return out
