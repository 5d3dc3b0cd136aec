"""The layering of ``src/meshfilter`` (docs/architecture.md, "Layers"), enforced by walking the imports.

The imports are read with :mod:`ast`; nothing is imported. Every ``import`` statement counts, also one
inside a function (it runs on the first call, and it is still a dependency); an import under ``if
TYPE_CHECKING:`` counts for the layers but not for cycles (it never runs). Importing ``a.b.c`` is an
edge to ``a.b.c`` only, not to the packages ``a`` and ``a.b`` Python initialises on the way. The public
API's lazy map (``meshfilter._LAZY``) is read as imports of the root package.

Rules:

* every package sits in one layer of :data:`LAYERS`; a package imports only packages of lower layers
  (so no library module imports ``meshfilter.cli``, and packages form no cycle);
* no cycle between modules (the granularity that matters inside a package: Python can only import a
  circle by deferring one side, and each module of the circle then needs the others to be understood);
* ``meshfilter.filters`` is pure: it imports only ``errors``, ``filters`` and the on-demand LuaJIT
  adapter ``util.luajit``, and nothing it imports at module level loads LuaJIT, a subprocess, a socket
  or an engine at module level;
* only ``meshfilter.testing`` itself and the pytest plugin import ``meshfilter.testing``;
* library errors name fields, not flags: no string in a library module's code names a flag of the
  ``meshfilter`` command line (its docstrings may; argv lists for other programs and a program's own
  ``add_argument`` calls are not messages).

Known violations that other engineers are fixing stand in the ``PENDING_*`` allow-lists below, each
with its owner. A listed violation that has disappeared fails too, so the lists only shrink.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = "meshfilter"

# Bottom first. A package may import packages of lower layers only (never one of its own layer).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),                   # the exception tree
    ("util",),                     # atomic writes, ports, processes, the LuaJIT adapter
    ("filters", "envoy"),          # reference semantics (pure); Envoy: bootstrap builders and runners
    ("sdk",),                      # the Python filter SDK: API, checker (source -> IR), reference runner
    ("wasm", "lua", "oras"),       # backends (Wasm codegen + emulator, Lua codegen; both compile the SDK's IR); OCI
    ("k8s",),                      # Kubernetes resources
    ("transcoder",),               # gRPC-JSON transcoding (renders EnvoyFilters with k8s)
    ("examples",),                 # the landing gRPC service
    ("demo",),                     # local meshes: orchestrates every area
    ("testing",),                  # test-only support (the registry's test parts, tagging vectors)
    ("meshfilter", "pytest_plugin"),  # the lazy public API (meshfilter/__init__.py); the pytest plugin
    ("cli",),                      # the command line
    ("__main__",),                 # python -m meshfilter
)
LAYER = {pkg: rank for rank, pkgs in enumerate(LAYERS) for pkg in pkgs}
MAY_IMPORT_TESTING = ("testing", "pytest_plugin")

# Pending violations: (importer, imported) -> owner, fixed on the owner's branch (issue 14).
PENDING_LAYER_EDGES: dict[tuple[str, str], str] = {}
# Import cycles between modules: the exact set of modules of each cycle -> owner.
PENDING_CYCLES: dict[frozenset[str], str] = {}
# Library modules whose error texts still name CLI flags -> owner (#14 item 1).
PENDING_FLAGS: dict[str, str] = {}

# What no module of meshfilter.filters may load, directly or through what it imports, at module level.
IMPURE = ("lupa", "subprocess", "socket", "http", "urllib", "requests", "docker", "grpc", "wasmtime")
FILTERS_MAY_IMPORT = ("meshfilter.errors", "meshfilter.filters", "meshfilter.util.luajit")


# --------------------------------------------------------------------------- reading the imports


@dataclass(frozen=True)
class Import:
    importer: str  # the module holding the statement
    target: str  # the module imported (for "from a import b": a.b when that is a module, else a)
    line: int
    deferred: bool  # inside a function body: runs on the first call, not on import
    type_only: bool  # under ``if TYPE_CHECKING:``: never runs


def module_names(src: Path, root: str = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every .py below ``src/root`` (a package is its __init__)."""
    out = {}
    for path in sorted((src / root).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, deferred: bool = False,
          type_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    """Every import statement below ``node``, with whether it is deferred and whether type-only."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node, deferred, type_only
        return
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        deferred = True
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for stmt in node.body:
            yield from _walk(stmt, deferred, True)
        for stmt in node.orelse:
            yield from _walk(stmt, deferred, type_only)
        return
    for child in ast.iter_child_nodes(node):
        yield from _walk(child, deferred, type_only)


def imports_of(name: str, path: Path, modules: Iterable[str]) -> list[Import]:
    known = set(modules)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node, deferred, type_only in _walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        for target in dict.fromkeys(targets):
            out.append(Import(name, target, node.lineno, deferred, type_only))
    if name == ROOT:
        out += _lazy_map_imports(tree)
    return out


def _lazy_map_imports(tree: ast.Module) -> list[Import]:
    """The root package's ``_LAZY = {"Name": "module[:attr]"}``: loaded on first attribute access."""
    out = []
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign) and isinstance(node.value, ast.Dict):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in targets):
                for value in node.value.values:
                    assert isinstance(value, ast.Constant) and isinstance(value.value, str)
                    out.append(Import(ROOT, value.value.partition(":")[0], value.lineno, True, False))
    return out


def read_tree(src: Path = SRC, root: str = ROOT) -> tuple[dict[str, Path], list[Import]]:
    modules = module_names(src, root)
    edges = [imp for name, path in modules.items() for imp in imports_of(name, path, modules)]
    return modules, edges


def package_of(module: str) -> str:
    """``meshfilter.k8s.validate`` -> ``k8s``; the root package is ``meshfilter``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def internal(edges: Iterable[Import], root: str = ROOT) -> list[Import]:
    return [e for e in edges if e.target == root or e.target.startswith(root + ".")]


def layer_violations(edges: Iterable[Import]) -> dict[tuple[str, str], Import]:
    out: dict[tuple[str, str], Import] = {}
    for e in internal(edges):
        a, b = package_of(e.importer), package_of(e.target)
        if a != b and LAYER.get(b, -1) >= LAYER.get(a, -1):
            out.setdefault((e.importer, e.target), e)
    return out


def cycles(edges: Iterable[Import], root: str = ROOT) -> list[frozenset[str]]:
    """Strongly connected components (more than one module, or a module importing itself) of the
    run-time imports (module-level and deferred; not TYPE_CHECKING-only)."""
    graph: dict[str, set[str]] = {}
    for e in internal(edges, root):
        if not e.type_only:
            graph.setdefault(e.importer, set()).add(e.target)
            graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                found.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def module_level_closure(start: Iterable[str], edges: Iterable[Import]) -> set[str]:
    """Every meshfilter module loaded, at module level, by importing the ``start`` modules."""
    graph: dict[str, set[str]] = {}
    for e in internal(edges):
        if not e.deferred and not e.type_only:
            graph.setdefault(e.importer, set()).add(e.target)
    seen: set[str] = set()
    todo = list(start)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph.get(m, ()))
    return seen


def _top(name: str) -> str:
    return name.split(".")[0]


# --------------------------------------------------------------------------- the rules


MODULES, EDGES = read_tree()


def _fmt(e: Import) -> str:
    how = "type-only " if e.type_only else "deferred " if e.deferred else ""
    return f"{MODULES[e.importer].relative_to(SRC.parent)}:{e.line}: {how}import of {e.target}"


def test_every_package_has_a_layer() -> None:
    missing = sorted({package_of(m) for m in MODULES} - set(LAYER))
    assert not missing, (f"packages {missing} are in no layer: add them to LAYERS in tests/test_layering.py "
                         "and to the picture in docs/architecture.md")


def test_imports_go_down_the_layers() -> None:
    found = layer_violations(EDGES)
    new = [_fmt(e) for key, e in sorted(found.items()) if key not in PENDING_LAYER_EDGES]
    assert not new, "imports up or across the layers (docs/architecture.md, Layers):\n" + "\n".join(new)
    fixed = sorted(set(PENDING_LAYER_EDGES) - set(found))
    assert not fixed, f"fixed, remove from PENDING_LAYER_EDGES: {fixed}"


def test_no_library_module_imports_the_cli() -> None:
    bad = [_fmt(e) for e in internal(EDGES)
           if package_of(e.target) in ("cli", "__main__") and package_of(e.importer) not in ("cli", "__main__")]
    assert not bad, "the library must not import the command line:\n" + "\n".join(bad)


def test_product_code_does_not_import_testing() -> None:
    bad = [_fmt(e) for e in internal(EDGES)
           if package_of(e.target) == "testing" and package_of(e.importer) not in MAY_IMPORT_TESTING]
    assert not bad, "only tests, the pytest plugin and meshfilter.testing import meshfilter.testing:\n" + "\n".join(bad)


def test_no_import_cycles_between_modules() -> None:
    found = cycles(EDGES)
    new = [sorted(c) for c in found if c not in PENDING_CYCLES]
    assert not new, f"import cycles between modules: {new}"
    fixed = [sorted(c) for c in PENDING_CYCLES if c not in found]
    assert not fixed, f"fixed, remove from PENDING_CYCLES: {fixed}"


def test_filters_import_only_errors_filters_and_the_luajit_adapter() -> None:
    bad = [_fmt(e) for e in internal(EDGES) if package_of(e.importer) == "filters"
           and not any(e.target == ok or e.target.startswith(ok + ".") for ok in FILTERS_MAY_IMPORT)]
    assert not bad, "meshfilter.filters is the pure bottom of the stack:\n" + "\n".join(bad)


def test_filters_load_no_luajit_process_socket_or_engine_at_module_level() -> None:
    filters = [m for m in MODULES if package_of(m) == "filters"]
    closure = module_level_closure(filters, EDGES)
    bad = [_fmt(e) for e in EDGES if e.importer in closure and not e.deferred and not e.type_only
           and _top(e.target) in IMPURE]
    assert not bad, "importing meshfilter.filters must stay pure (import these inside functions):\n" + "\n".join(bad)
    assert "meshfilter.util.luajit" in closure  # the adapter is reached, and is itself lazy (checked above)


# --------------------------------------------------------------------------- the library speaks fields

_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")
_ARGV_TOKEN = re.compile(r"--[a-z][a-z0-9_-]*(=.*)?", re.S)


def cli_flags() -> set[str]:
    """Every long option of the ``meshfilter`` command line, in every subcommand."""
    from meshfilter.cli import build_parser

    flags: set[str] = set()
    todo: list[argparse.ArgumentParser] = [build_parser()]
    while todo:
        parser = todo.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
            flags.update(o for o in action.option_strings if o.startswith("--"))
    return flags - {"--help"}


def _docstrings(tree: ast.Module) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _text(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(v.value) if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def flag_mentions(path: Path, flags: set[str]) -> list[tuple[int, str]]:
    """(line, flag) for every CLI flag a string of the module's code names. Not counted: docstrings;
    argv tokens for another program (a string that is one ``--flag[=...]``, as an element of a list,
    tuple or comprehension, or given to ``append``/``extend``/``insert``); the arguments of
    ``add_argument``/``addoption`` (a program's own flags)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("add_argument", "addoption"):
                skip.update(id(n) for arg in node.args for n in ast.walk(arg))
            if node.func.attr in ("append", "extend", "insert"):
                skip.update(id(a) for a in node.args if (t := _text(a)) and _ARGV_TOKEN.fullmatch(t))
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            skip.update(id(a) for a in node.elts if (t := _text(a)) and _ARGV_TOKEN.fullmatch(t))
        if isinstance(node, (ast.GeneratorExp, ast.ListComp)) and (t := _text(node.elt)) and _ARGV_TOKEN.fullmatch(t):
            skip.add(id(node.elt))
    for node in ast.walk(tree):  # an f-string is read as one text, not part by part
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
    out = []
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, (ast.Constant, ast.JoinedStr)):
            continue
        text = _text(node)
        if text:
            out += [(node.lineno, f) for f in _FLAG.findall(text) if f in flags]
    return sorted(set(out))


def _library_modules() -> dict[str, Path]:
    """Not the CLI, not test support, and not a ``__main__`` (a program of its own, with its own flags)."""
    return {m: p for m, p in MODULES.items()
            if package_of(m) not in ("cli", "__main__", "testing") and not m.endswith(".__main__")}


def test_library_errors_name_fields_not_cli_flags() -> None:
    flags = cli_flags()
    assert {"--rules", "--set", "--root-id", "--plain-http"} <= flags  # the scan knows the real flags
    found = {m: mentions for m, p in _library_modules().items() if (mentions := flag_mentions(p, flags))}
    new = [f"{MODULES[m].relative_to(SRC.parent)}:{line}: names {flag}"
           for m, mentions in sorted(found.items()) if m not in PENDING_FLAGS for line, flag in mentions]
    assert not new, ("library modules name CLI flags; name the field (where=\"root_id\", hint with `root_id`) "
                     "and let cli/_fields.py spell it:\n" + "\n".join(new))
    fixed = sorted(set(PENDING_FLAGS) - set(found))
    assert not fixed, f"fixed, remove from PENDING_FLAGS: {fixed}"


# --------------------------------------------------------------------------- the checker itself


def _plant(tmp_path: Path, files: dict[str, str]) -> tuple[dict[str, Path], list[Import]]:
    for rel, text in files.items():
        p = tmp_path / "pkg" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return read_tree(tmp_path, "pkg")


def test_the_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    modules, edges = _plant(tmp_path, {
        "__init__.py": "",
        "a/__init__.py": "from . import b\n",
        "a/b.py": "from typing import TYPE_CHECKING\nimport pkg.c as c\nif TYPE_CHECKING:\n    from pkg.d import X\n"
                  "def f():\n    from ..d import Y\nclass K:\n    from pkg import c\n",
        "c.py": "", "d.py": "",
    })
    got = {(e.importer, e.target, e.deferred, e.type_only) for e in edges if e.target.startswith("pkg")}
    assert got == {("pkg.a", "pkg.a.b", False, False), ("pkg.a.b", "pkg.c", False, False),
                   ("pkg.a.b", "pkg.d", False, True), ("pkg.a.b", "pkg.d", True, False)}


def test_the_checks_catch_a_planted_cycle_and_an_upward_import(tmp_path: Path) -> None:
    _, edges = _plant(tmp_path, {
        "__init__.py": "", "x.py": "def f():\n    import pkg.y\n", "y.py": "import pkg.x\n",
        "z.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.y\n",
    })
    assert cycles(edges, root="pkg") == [frozenset({"pkg.x", "pkg.y"})]  # deferred counts, type-only not
    upward = [Import("meshfilter.filters.model", "meshfilter.cli._rules", 1, True, False),
              Import("meshfilter.cli.lua", "meshfilter.filters.model", 1, False, False)]
    assert set(layer_violations(upward)) == {("meshfilter.filters.model", "meshfilter.cli._rules")}


def test_the_flag_scan_finds_messages_and_skips_argv_and_docstrings(tmp_path: Path) -> None:
    p = tmp_path / "m.py"
    p.write_text('"""Mentions --rules in a docstring."""\n'
                 'def f(x):\n'
                 '    """And --set here."""\n'
                 '    cmd = ["envoy", "--rules", f"--set={x}", *(f"--set={i}" for i in x)]\n'
                 '    cmd.append("--rules")\n'
                 '    raise ValueError(f"drop --plain-http for {x}", "--root-id")\n')
    assert flag_mentions(p, {"--rules", "--set", "--plain-http", "--root-id"}) == [(6, "--plain-http"),
                                                                                    (6, "--root-id")]


@pytest.mark.parametrize("module", ["meshfilter.filters.tagging", "meshfilter.lua.codegen", "meshfilter.util.luajit"])
def test_importing_the_tagging_model_does_not_load_luajit(module: str) -> None:
    import subprocess
    import sys

    code = f"import sys, {module}; print('lupa' in sys.modules, 'meshfilter.cli' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
