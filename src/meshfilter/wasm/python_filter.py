"""A filter written in Python (``meshfilter.sdk``), compiled to a proxy-wasm module: WAT through
:class:`~meshfilter.wasm.codegen.ModuleBuilder`, no toolchain.

The input is the checked IR (:func:`meshfilter.sdk.checker.check_file`); the module implements
exactly the reference semantics of :mod:`meshfilter.sdk.api`:

* values: ``str`` (and ``str | None``) are one i64, the length in the high 32 bits and the address
  in the low 32 (None is -1); ``int`` is an i64 (the checker proved it exact); ``bool`` an i32; a
  ``list[str]`` the address of ``[count i32][pad][i64 entries]``;
* a header read fetches the header map once per callback (``proxy_get_header_map_pairs``, again
  only after a write to it) and joins every value of the name with ``","``: Envoy's
  ``proxy_get_header_map_value`` returns the first value only;
* header writes are ``proxy_replace_header_map_value`` / ``_add_`` / ``_remove_``, after checking the
  name and value at run time unless the checker knows them valid;
* ``request.respond()`` is ``proxy_send_local_response``, and the callback then returns
  StopIteration; ``clear_route_cache()`` is Envoy's foreign function (ABI 0.1.0: the ABI's own call);
* the configuration is parsed in ``proxy_on_configure`` (:mod:`meshfilter.wasm.json_config`).

Each callback starts by resetting the bump allocator, so memory stays flat whatever the traffic.
Nothing traps: every read of host data is bounds-checked, an allocation that fails ends the callback
(``out of memory`` logged) instead of writing anywhere. Exports: the ABI marker, ``memory``, the
allocator and the callbacks the class defines (``proxy_on_configure`` only with a ``Config``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from meshfilter.sdk import ir
from meshfilter.sdk.ir import BOOL, INT, LIST, NONE, OPT_STR, STR, VOID, Expr, Function, Program, Stmt
from meshfilter.sdk.wire import wire_bytes
from meshfilter.wasm.codegen import DEFAULT_ABI, LogLevel, MapType, ModuleBuilder, assemble
from meshfilter.wasm.json_config import ConfigLayout, add_config, add_same, add_token_check, pack

__all__ = ["build_python_filter", "compile_program", "render_python_filter"]

_LEVELS = {"debug": LogLevel.DEBUG, "info": LogLevel.INFO, "warn": LogLevel.WARN, "error": LogLevel.ERROR}
_MAPS = {"request": MapType.REQUEST_HEADERS, "response": MapType.RESPONSE_HEADERS}
_HOST_OPS = {"set": "proxy_replace_header_map_value", "add": "proxy_add_header_map_value",
             "remove": "proxy_remove_header_map_value"}
_ALLOCATING = (ir.Concat, ir.IntToStr, ir.HeaderGet, ir.Pseudo, ir.Status)


def _wasm_type(t: str) -> str:
    return "i32" if t in (BOOL, LIST) else "i64"


def _zero(t: str) -> str:
    return f"({_wasm_type(t)}.const 0)"


# -- the runtime library (added on first use) ------------------------------------------------------

_RUNTIME: dict[str, str] = {
    "$new": r"""
;; $n bytes from the heap, or 0 with $oom set (the caller writes nothing then)
(func $new (param $n i32) (result i32) (local $p i32)
  (local.set $p (call $alloc (local.get $n)))
  (if (i32.eqz (local.get $p)) (then (global.set $oom (i32.const 1))))
  (local.get $p))""",
    "$s_eq": r"""
(func $s_eq (param $a i64) (param $b i64) (result i32)
  (if (i64.eq (local.get $a) (local.get $b)) (then (return (i32.const 1))))
  (if (i32.or (i64.eq (local.get $a) (i64.const -1)) (i64.eq (local.get $b) (i64.const -1)))
    (then (return (i32.const 0))))
  (if (i64.ne (i64.shr_u (local.get $a) (i64.const 32)) (i64.shr_u (local.get $b) (i64.const 32)))
    (then (return (i32.const 0))))
  (call $same (i32.wrap_i64 (local.get $a)) (i32.wrap_i64 (local.get $b))
              (i32.wrap_i64 (i64.shr_u (local.get $a) (i64.const 32)))))""",
    "$s_starts": r"""
(func $s_starts (param $s i64) (param $p i64) (result i32)
  (if (result i32) (i64.lt_u (i64.shr_u (local.get $s) (i64.const 32)) (i64.shr_u (local.get $p) (i64.const 32)))
    (then (i32.const 0))
    (else (call $same (i32.wrap_i64 (local.get $s)) (i32.wrap_i64 (local.get $p))
                      (i32.wrap_i64 (i64.shr_u (local.get $p) (i64.const 32)))))))""",
    "$s_ends": r"""
(func $s_ends (param $s i64) (param $p i64) (result i32) (local $n i32)
  (local.set $n (i32.wrap_i64 (i64.shr_u (local.get $p) (i64.const 32))))
  (if (result i32) (i64.lt_u (i64.shr_u (local.get $s) (i64.const 32)) (i64.shr_u (local.get $p) (i64.const 32)))
    (then (i32.const 0))
    (else (call $same (i32.sub (i32.add (i32.wrap_i64 (local.get $s))
                                        (i32.wrap_i64 (i64.shr_u (local.get $s) (i64.const 32)))) (local.get $n))
                      (i32.wrap_i64 (local.get $p)) (local.get $n)))))""",
    "$s_find": r"""
;; $n occurs in $h (a byte substring; the empty string occurs everywhere)
(func $s_find (param $h i64) (param $n i64) (result i32) (local $p i32) (local $last i32) (local $nl i32)
  (local.set $nl (i32.wrap_i64 (i64.shr_u (local.get $n) (i64.const 32))))
  (if (i64.lt_u (i64.shr_u (local.get $h) (i64.const 32)) (i64.extend_i32_u (local.get $nl)))
    (then (return (i32.const 0))))
  (local.set $p (i32.wrap_i64 (local.get $h)))
  (local.set $last (i32.add (local.get $p)
    (i32.sub (i32.wrap_i64 (i64.shr_u (local.get $h) (i64.const 32))) (local.get $nl))))
  (loop $l
    (if (call $same (local.get $p) (i32.wrap_i64 (local.get $n)) (local.get $nl)) (then (return (i32.const 1))))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (br_if $l (i32.le_u (local.get $p) (local.get $last))))
  (i32.const 0))""",
    "$s_rmprefix": r"""
(func $s_rmprefix (param $s i64) (param $p i64) (result i64) (local $n i64)
  (if (i32.eqz (call $s_starts (local.get $s) (local.get $p))) (then (return (local.get $s))))
  (local.set $n (i64.shr_u (local.get $p) (i64.const 32)))
  (i64.or (i64.sub (i64.and (local.get $s) (i64.const 0xFFFFFFFF00000000)) (i64.shl (local.get $n) (i64.const 32)))
          (i64.extend_i32_u (i32.add (i32.wrap_i64 (local.get $s)) (i32.wrap_i64 (local.get $n))))))""",
    "$s_rmsuffix": r"""
(func $s_rmsuffix (param $s i64) (param $p i64) (result i64)
  (if (i32.eqz (call $s_ends (local.get $s) (local.get $p))) (then (return (local.get $s))))
  (i64.sub (local.get $s) (i64.and (local.get $p) (i64.const 0xFFFFFFFF00000000))))""",
    "$s_case": r"""
;; ASCII lower-case ($up = 0) or upper-case ($up = 1); the string itself when nothing changes
(func $s_case (param $s i64) (param $up i32) (result i64) (local $p i32) (local $e i32) (local $c i32)
  (local $d i32) (local $from i32)
  (local.set $from (i32.add (i32.const 65) (i32.shl (local.get $up) (i32.const 5))))
  (local.set $p (i32.wrap_i64 (local.get $s)))
  (local.set $e (i32.add (local.get $p) (i32.wrap_i64 (i64.shr_u (local.get $s) (i64.const 32)))))
  (block $change
    (loop $l
      (if (i32.ge_u (local.get $p) (local.get $e)) (then (return (local.get $s))))
      (br_if $change (i32.lt_u (i32.sub (i32.load8_u (local.get $p)) (local.get $from)) (i32.const 26)))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br $l)))
  (local.set $d (call $new (i32.wrap_i64 (i64.shr_u (local.get $s) (i64.const 32)))))
  (if (i32.eqz (local.get $d)) (then (return (local.get $s))))
  (local.set $p (i32.wrap_i64 (local.get $s)))
  (local.set $s (i64.or (i64.and (local.get $s) (i64.const 0xFFFFFFFF00000000)) (i64.extend_i32_u (local.get $d))))
  (block $end
    (loop $l
      (br_if $end (i32.ge_u (local.get $p) (local.get $e)))
      (local.set $c (i32.load8_u (local.get $p)))
      (if (i32.lt_u (i32.sub (local.get $c) (local.get $from)) (i32.const 26))
        (then (local.set $c (i32.xor (local.get $c) (i32.const 32)))))
      (i32.store8 (local.get $d) (local.get $c))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (local.set $d (i32.add (local.get $d) (i32.const 1)))
      (br $l)))
  (local.get $s))""",
    "$s_strip": r"""
;; without leading and trailing ASCII whitespace (Python's: 9-13, 28-32)
(func $s_strip (param $s i64) (result i64) (local $p i32) (local $e i32)
  (local.set $p (i32.wrap_i64 (local.get $s)))
  (local.set $e (i32.add (local.get $p) (i32.wrap_i64 (i64.shr_u (local.get $s) (i64.const 32)))))
  (block $a (loop $l
    (br_if $a (i32.ge_u (local.get $p) (local.get $e)))
    (br_if $a (i32.eqz (call $space (i32.load8_u (local.get $p)))))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (br $l)))
  (block $b (loop $l
    (br_if $b (i32.le_u (local.get $e) (local.get $p)))
    (br_if $b (i32.eqz (call $space (i32.load8_u (i32.sub (local.get $e) (i32.const 1))))))
    (local.set $e (i32.sub (local.get $e) (i32.const 1)))
    (br $l)))
  (i64.or (i64.shl (i64.extend_i32_u (i32.sub (local.get $e) (local.get $p))) (i64.const 32))
          (i64.extend_i32_u (local.get $p))))
(func $space (param $c i32) (result i32)
  (i32.or (i32.lt_u (i32.sub (local.get $c) (i32.const 9)) (i32.const 5))
          (i32.lt_u (i32.sub (local.get $c) (i32.const 28)) (i32.const 5))))""",
    "$itoa": r"""
(func $itoa (param $v i64) (result i64) (local $d i32) (local $e i32) (local $neg i32)
  (local.set $d (call $new (i32.const 24)))
  (if (i32.eqz (local.get $d)) (then (return (i64.const 0))))
  (local.set $e (i32.add (local.get $d) (i32.const 24)))
  (local.set $d (local.get $e))
  (local.set $neg (i64.lt_s (local.get $v) (i64.const 0)))
  (if (local.get $neg) (then (local.set $v (i64.sub (i64.const 0) (local.get $v)))))
  (loop $l
    (local.set $d (i32.sub (local.get $d) (i32.const 1)))
    (i32.store8 (local.get $d) (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
    (br_if $l (i64.ne (local.tee $v (i64.div_u (local.get $v) (i64.const 10))) (i64.const 0))))
  (if (local.get $neg)
    (then (local.set $d (i32.sub (local.get $d) (i32.const 1))) (i32.store8 (local.get $d) (i32.const 45))))
  (i64.or (i64.shl (i64.extend_i32_u (i32.sub (local.get $e) (local.get $d))) (i64.const 32))
          (i64.extend_i32_u (local.get $d))))""",
    "$l_has": r"""
(func $l_has (param $l i32) (param $s i64) (result i32) (local $n i32)
  (local.set $n (i32.load (local.get $l)))
  (block $no
    (loop $k
      (br_if $no (i32.eqz (local.get $n)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $k (i32.eqz (call $s_eq (i64.load offset=8 (i32.add (local.get $l) (i32.shl (local.get $n) (i32.const 3))))
                                      (local.get $s))))
      (return (i32.const 1))))
  (i32.const 0))""",
    "$truthy": r"""
(func $truthy (param $s i64) (result i32)
  (i32.and (i64.ne (local.get $s) (i64.const -1)) (i64.ne (i64.shr_u (local.get $s) (i64.const 32)) (i64.const 0))))""",
    "$log": r"""
(func $log (param $level i32) (param $s i64)
  (drop (call $proxy_log (local.get $level) (i32.wrap_i64 (local.get $s))
                         (i32.wrap_i64 (i64.shr_u (local.get $s) (i64.const 32))))))""",
    "$hget": r"""
;; every value of header $name (ASCII case-insensitive) joined with ",", or -1 (absent)
(func $hget (param $map i32) (param $name i64) (result i64)
  (local $count i32) (local $sizes i32) (local $d i32) (local $kl i32) (local $vl i32) (local $v i32)
  (local $found i64) (local $buf i32) (local $len i32) (local $end i32)
  (call $pairs (local.get $map))
  (local.set $found (i64.const -1))
  (local.set $end (global.get $pc_end))
  (if (i32.lt_u (i32.sub (local.get $end) (global.get $pc)) (i32.const 4)) (then (return (i64.const -1))))
  (local.set $count (i32.load (global.get $pc)))
  (local.set $sizes (i32.add (global.get $pc) (i32.const 4)))
  (if (i32.gt_u (local.get $count) (i32.shr_u (i32.sub (local.get $end) (local.get $sizes)) (i32.const 3)))
    (then (return (i64.const -1))))
  (local.set $d (i32.add (local.get $sizes) (i32.shl (local.get $count) (i32.const 3))))
  (block $done
    (loop $l
      (br_if $done (i32.eqz (local.get $count)))
      (local.set $kl (i32.load (local.get $sizes)))
      (local.set $vl (i32.load offset=4 (local.get $sizes)))
      (br_if $done (i32.gt_u (local.get $kl) (i32.sub (local.get $end) (local.get $d))))
      (local.set $v (i32.add (i32.add (local.get $d) (local.get $kl)) (i32.const 1)))
      (br_if $done (i32.gt_u (local.get $v) (local.get $end)))
      (br_if $done (i32.ge_u (local.get $vl) (i32.sub (local.get $end) (local.get $v))))
      (if (i32.and (i64.eq (i64.extend_i32_u (local.get $kl)) (i64.shr_u (local.get $name) (i64.const 32)))
                   (call $ieq (local.get $d) (i32.wrap_i64 (local.get $name)) (local.get $kl)))
        (then
          (if (i64.eq (local.get $found) (i64.const -1))
            (then (local.set $found (i64.or (i64.shl (i64.extend_i32_u (local.get $vl)) (i64.const 32))
                                            (i64.extend_i32_u (local.get $v)))))
            (else
              (if (i32.eqz (local.get $buf))
                (then
                  ;; a second value: join into a buffer as large as the whole map (an upper bound)
                  (local.set $buf (call $new (i32.sub (local.get $end) (global.get $pc))))
                  (br_if $done (i32.eqz (local.get $buf)))
                  (local.set $len (i32.wrap_i64 (i64.shr_u (local.get $found) (i64.const 32))))
                  (memory.copy (local.get $buf) (i32.wrap_i64 (local.get $found)) (local.get $len))))
              (i32.store8 (i32.add (local.get $buf) (local.get $len)) (i32.const 44))
              (memory.copy (i32.add (i32.add (local.get $buf) (local.get $len)) (i32.const 1))
                           (local.get $v) (local.get $vl))
              (local.set $len (i32.add (i32.add (local.get $len) (local.get $vl)) (i32.const 1)))
              (local.set $found (i64.or (i64.shl (i64.extend_i32_u (local.get $len)) (i64.const 32))
                                        (i64.extend_i32_u (local.get $buf))))))))
      (local.set $d (i32.add (i32.add (local.get $v) (local.get $vl)) (i32.const 1)))
      (local.set $sizes (i32.add (local.get $sizes) (i32.const 8)))
      (local.set $count (i32.sub (local.get $count) (i32.const 1)))
      (br $l)))
  (local.get $found))
;; $n bytes at $a equal $n bytes at $b, ASCII letters compared case-insensitively
(func $ieq (param $a i32) (param $b i32) (param $n i32) (result i32) (local $x i32) (local $y i32)
  (block $no
    (loop $l
      (if (i32.eqz (local.get $n)) (then (return (i32.const 1))))
      (local.set $x (i32.load8_u (local.get $a)))
      (local.set $y (i32.load8_u (local.get $b)))
      (if (i32.lt_u (i32.sub (local.get $x) (i32.const 65)) (i32.const 26))
        (then (local.set $x (i32.or (local.get $x) (i32.const 32)))))
      (if (i32.lt_u (i32.sub (local.get $y) (i32.const 65)) (i32.const 26))
        (then (local.set $y (i32.or (local.get $y) (i32.const 32)))))
      (br_if $no (i32.ne (local.get $x) (local.get $y)))
      (local.set $a (i32.add (local.get $a) (i32.const 1)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
  (i32.const 0))""",
    "$pseudo": r"""
(func $pseudo (param $name i64) (result i64) (local $v i64)
  (local.set $v (call $hget (i32.const 0) (local.get $name)))
  (select (i64.const 0) (local.get $v) (i64.eq (local.get $v) (i64.const -1))))""",
    "$status": r"""
;; :status as an int: 1 to 9 digits, else 0
(func $status (result i64) (local $s i64) (local $p i32) (local $e i32) (local $v i64) (local $c i32)
  (local.set $s (call $hget (i32.const 2) (i64.const STATUS_NAME)))
  (if (i64.eq (local.get $s) (i64.const -1)) (then (return (i64.const 0))))
  (if (i64.gt_u (i64.sub (i64.shr_u (local.get $s) (i64.const 32)) (i64.const 1)) (i64.const 8))
    (then (return (i64.const 0))))
  (local.set $p (i32.wrap_i64 (local.get $s)))
  (local.set $e (i32.add (local.get $p) (i32.wrap_i64 (i64.shr_u (local.get $s) (i64.const 32)))))
  (loop $l
    (local.set $c (i32.sub (i32.load8_u (local.get $p)) (i32.const 48)))
    (if (i32.ge_u (local.get $c) (i32.const 10)) (then (return (i64.const 0))))
    (local.set $v (i64.add (i64.mul (local.get $v) (i64.const 10)) (i64.extend_i32_u (local.get $c))))
    (br_if $l (i32.lt_u (local.tee $p (i32.add (local.get $p) (i32.const 1))) (local.get $e))))
  (local.get $v))""",
}

_DEPS: dict[str, tuple[str, ...]] = {
    "$s_eq": ("$same",), "$s_starts": ("$same",), "$s_ends": ("$same",), "$s_find": ("$same",),
    "$s_rmprefix": ("$s_starts",), "$s_rmsuffix": ("$s_ends",), "$s_case": ("$new",), "$itoa": ("$new",),
    "$l_has": ("$s_eq",), "$hget": ("$new", "$pairs"), "$pseudo": ("$hget",), "$status": ("$hget",),
    "$respond": ("$new", "$clean", "$itoa"),
}


@dataclass
class _Fn:
    """Per-function codegen state: temporaries and loop labels."""

    fn: Function
    temps: list[tuple[str, str]] = field(default_factory=list)
    loops: list[int] = field(default_factory=list)

    def temp(self, wasm_type: str) -> str:
        name = f"$t{len(self.temps)}"
        self.temps.append((name, wasm_type))
        return name


class _Compiler:
    def __init__(self, program: Program, abi: str) -> None:
        self.p = program
        self.mb = ModuleBuilder(abi)
        self.used: set[str] = set()
        self.cats: set[int] = set()
        self.layout: ConfigLayout | None = None
        self.labels = 0
        self.allocating = {f.name: False for f in program.functions.values()}
        self.responds = self._responding()

    # -- analysis -------------------------------------------------------------------------------

    def _responding(self) -> set[str]:
        out: set[str] = set()
        changed = True
        while changed:
            changed = False
            for fn in self.p.functions.values():
                if fn.name in out:
                    continue
                if any(isinstance(s, ir.Respond) for s in ir.walk_stmts(fn.body)) or \
                        ir.calls_in(fn.body) & out:
                    out.add(fn.name)
                    changed = True
        return out

    def expr_allocates(self, e: Expr) -> bool:
        for sub in ir.walk_exprs(e):
            if isinstance(sub, _ALLOCATING) or (isinstance(sub, ir.Contains) and sub.kind == "headers"):
                return True
            if isinstance(sub, ir.StrMethod) and sub.method in ("lower", "upper"):
                return True
            if isinstance(sub, ir.CallHelper) and self.allocating[sub.name]:
                return True
        return False

    def stmt_allocates(self, s: Stmt) -> bool:
        return isinstance(s, ir.Respond) or any(self.expr_allocates(e) for e in ir.stmt_exprs(s))

    def body_allocates(self, body: tuple[Stmt, ...]) -> bool:
        return any(self.stmt_allocates(s) for s in ir.walk_stmts(body))

    # -- runtime --------------------------------------------------------------------------------

    def use(self, name: str) -> str:
        if name in self.used:
            return name
        self.used.add(name)
        for dep in _DEPS.get(name, ()):
            self.use(dep)
        mb = self.mb
        if name == "$same":
            add_same(mb)
        elif name in ("$tok", "$clean"):
            add_token_check(mb)
        elif name == "$new":
            mb.global_("oom")
            mb.func(_RUNTIME[name])
        elif name == "$pairs":
            slots = mb.reserve(8)
            get = mb.use("proxy_get_header_map_pairs")
            for g in ("pc_ok", "pc", "pc_end"):
                mb.global_(g)
            mb.func(f"""
;; the header map, fetched once per callback (again after a write): $pc .. $pc_end
(func $pairs (param $map i32)
  (if (i32.eq (global.get $pc_ok) (i32.add (local.get $map) (i32.const 1))) (then (return)))
  (global.set $pc_ok (i32.add (local.get $map) (i32.const 1)))
  (i64.store (i32.const {slots.offset}) (i64.const 0))
  (global.set $pc (i32.const 0))
  (global.set $pc_end (i32.const 0))
  (if (i32.eqz (call {get} (local.get $map) (i32.const {slots.offset}) (i32.const {slots.offset + 4})))
    (then
      (global.set $pc (i32.load (i32.const {slots.offset})))
      (if (global.get $pc)
        (then (global.set $pc_end (i32.add (global.get $pc) (i32.load (i32.const {slots.offset + 4})))))))))""")
        elif name == "$log":
            mb.use("proxy_log")
            mb.func(_RUNTIME[name])
        elif name == "$status":
            seg = mb.data(":status")
            mb.func(_RUNTIME[name].replace("STATUS_NAME", str(pack(seg.offset, seg.length))))
        elif name == "$respond":
            self._respond_fn()
        else:
            mb.func(_RUNTIME[name])
        return name

    def cat(self, n: int) -> str:
        name = f"$cat{n}"
        if n not in self.cats:
            self.cats.add(n)
            self.use("$new")
            params = " ".join(f"(param $p{i} i64)" for i in range(n))
            sum_expr = "(i64.shr_u (local.get $p0) (i64.const 32))"
            for i in range(1, n):
                sum_expr = f"(i64.add {sum_expr} (i64.shr_u (local.get $p{i}) (i64.const 32)))"
            copies = "\n  ".join(
                f"(memory.copy (local.get $d) (i32.wrap_i64 (local.get $p{i})) "
                f"(local.tee $n (i32.wrap_i64 (i64.shr_u (local.get $p{i}) (i64.const 32)))))\n  "
                f"(local.set $d (i32.add (local.get $d) (local.get $n)))" for i in range(n))
            self.mb.func(f"""
(func {name} {params} (result i64) (local $len i32) (local $d i32) (local $b i32) (local $n i32)
  (local.set $len (i32.wrap_i64 {sum_expr}))
  (local.set $b (call $new (local.get $len)))
  (if (i32.eqz (local.get $b)) (then (return (i64.const 0))))
  (local.set $d (local.get $b))
  {copies}
  (i64.or (i64.shl (i64.extend_i32_u (local.get $len)) (i64.const 32)) (i64.extend_i32_u (local.get $b))))""")
        return name

    def _respond_fn(self) -> None:
        mb = self.mb
        send = mb.use("proxy_send_local_response")
        before, _, after = ir.BAD_STATUS.partition("{status}")
        b1, b2 = mb.data(before), mb.data(after)
        mb.global_("responded")
        cat = self.cat(3)
        self.use("$log")
        mb.func(f"""
;; proxy_send_local_response with the headers at $h: $n (name i64, value i64) pairs
(func $respond (param $status i64) (param $body i64) (param $h i32) (param $n i32)
  (local $i i32) (local $size i32) (local $cnt i32) (local $p i32) (local $s i32) (local $d i32) (local $k i64)
  (local $v i64)
  (if (i32.or (i64.lt_s (local.get $status) (i64.const 200)) (i64.gt_s (local.get $status) (i64.const 599)))
    (then
      (call $log (i32.const {LogLevel.WARN})
        (call {cat} (i64.const {pack(b1.offset, b1.length)}) (call $itoa (local.get $status))
                    (i64.const {pack(b2.offset, b2.length)})))
      (local.set $status (i64.const 500))))
  (local.set $size (i32.const 4))
  (block $done (loop $l
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (local.set $p (i32.add (local.get $h) (i32.shl (local.get $i) (i32.const 4))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (if (call $clean (i64.load offset=8 (local.get $p)))
      (then
        (local.set $cnt (i32.add (local.get $cnt) (i32.const 1)))
        (local.set $size (i32.add (local.get $size)
          (i32.add (i32.const 10) (i32.add (i32.load offset=4 (local.get $p)) (i32.load offset=12 (local.get $p)))))))
      (else
        {mb.log(LogLevel.WARN, ir.SKIP_VALUE.format(op="request.respond"))}
        (i64.store (local.get $p) (i64.const -1))))
    (br $l)))
  (if (global.get $oom) (then (return)))
  (local.set $s (call $new (local.get $size)))
  (if (i32.eqz (local.get $s)) (then (return)))
  (i32.store (local.get $s) (local.get $cnt))
  (local.set $d (i32.add (i32.add (local.get $s) (i32.const 4)) (i32.shl (local.get $cnt) (i32.const 3))))
  (local.set $cnt (i32.add (local.get $s) (i32.const 4)))
  (local.set $i (i32.const 0))
  (block $done (loop $l
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (local.set $p (i32.add (local.get $h) (i32.shl (local.get $i) (i32.const 4))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (local.set $k (i64.load (local.get $p)))
    (br_if $l (i64.eq (local.get $k) (i64.const -1)))
    (local.set $v (i64.load offset=8 (local.get $p)))
    (i32.store (local.get $cnt) (i32.wrap_i64 (i64.shr_u (local.get $k) (i64.const 32))))
    (i32.store offset=4 (local.get $cnt) (i32.wrap_i64 (i64.shr_u (local.get $v) (i64.const 32))))
    (local.set $cnt (i32.add (local.get $cnt) (i32.const 8)))
    (memory.copy (local.get $d) (i32.wrap_i64 (local.get $k)) (i32.wrap_i64 (i64.shr_u (local.get $k) (i64.const 32))))
    (local.set $d (i32.add (local.get $d) (i32.wrap_i64 (i64.shr_u (local.get $k) (i64.const 32)))))
    (i32.store8 (local.get $d) (i32.const 0))
    (memory.copy (i32.add (local.get $d) (i32.const 1)) (i32.wrap_i64 (local.get $v))
                 (i32.wrap_i64 (i64.shr_u (local.get $v) (i64.const 32))))
    (local.set $d (i32.add (i32.add (local.get $d) (i32.wrap_i64 (i64.shr_u (local.get $v) (i64.const 32))))
                           (i32.const 1)))
    (i32.store8 (local.get $d) (i32.const 0))
    (local.set $d (i32.add (local.get $d) (i32.const 1)))
    (br $l)))
  (drop (call {send} (i32.wrap_i64 (local.get $status)) (i32.const 0) (i32.const 0)
                     (i32.wrap_i64 (local.get $body)) (i32.wrap_i64 (i64.shr_u (local.get $body) (i64.const 32)))
                     (local.get $s) (local.get $size) (i32.const -1)))
  (global.set $responded (i32.const 1)))""")

    # -- expressions ----------------------------------------------------------------------------

    def const_str(self, value: str) -> str:
        raw = wire_bytes(value)
        if not raw:
            return "(i64.const 0)"
        seg = self.mb.data(raw)
        return f"(i64.const {pack(seg.offset, seg.length)})"

    def list_const(self, values: tuple[str, ...]) -> str:
        segs = [self.mb.data(wire_bytes(v)) for v in values]
        table = len(segs).to_bytes(4, "little") + bytes(4) + b"".join(
            pack(s.offset, s.length).to_bytes(8, "little") for s in segs)
        return f"(i32.const {self.mb.data(table, align=8).offset})"

    def ex(self, e: Expr, f: _Fn) -> str:
        if isinstance(e, ir.Const):
            if e.type == NONE or e.value is None:
                return "(i64.const -1)"
            if e.type == BOOL:
                return f"(i32.const {int(bool(e.value))})"
            if e.type == INT:
                return f"(i64.const {e.value})"
            assert isinstance(e.value, str)
            return self.const_str(e.value)
        if isinstance(e, ir.ListConst):
            return self.list_const(e.values)
        if isinstance(e, ir.Var):
            return f"(local.get $v_{e.name})"
        if isinstance(e, ir.ConfigRef):
            assert self.layout is not None
            return self.layout.load(e.field)
        if isinstance(e, ir.Concat):
            return f"(call {self.cat(len(e.parts))} {' '.join(self.ex(p, f) for p in e.parts)})"
        if isinstance(e, ir.IntToStr):
            return f"(call {self.use('$itoa')} {self.ex(e.value, f)})"
        if isinstance(e, ir.Arith):
            return f"(i64.{'add' if e.op == '+' else 'sub'} {self.ex(e.left, f)} {self.ex(e.right, f)})"
        if isinstance(e, ir.Compare):
            a, b = self.ex(e.left, f), self.ex(e.right, f)
            if e.left.type in (STR, OPT_STR):
                eq = f"(call {self.use('$s_eq')} {a} {b})"
                return eq if e.op == "==" else f"(i32.eqz {eq})"
            ops = {"==": "eq", "!=": "ne", "<": "lt_s", "<=": "le_s", ">": "gt_s", ">=": "ge_s"}
            if e.left.type == BOOL:
                return f"(i32.{ops[e.op]} {a} {b})"
            return f"(i64.{ops[e.op]} {a} {b})"
        if isinstance(e, ir.IsNone):
            return f"(i64.{'ne' if e.negate else 'eq'} {self.ex(e.value, f)} (i64.const -1))"
        if isinstance(e, ir.Contains):
            if e.kind == "headers":
                out = f"(i64.ne (call {self.use('$hget')} (i32.const {_MAPS[e.map]}) {self.ex(e.needle, f)}) " \
                      f"(i64.const -1))"
            elif e.kind == "str":
                assert e.haystack is not None
                out = f"(call {self.use('$s_find')} {self.ex(e.haystack, f)} {self.ex(e.needle, f)})"
            else:
                assert e.haystack is not None
                out = f"(call {self.use('$l_has')} {self.ex(e.haystack, f)} {self.ex(e.needle, f)})"
            return f"(i32.eqz {out})" if e.negate else out
        if isinstance(e, ir.BoolOp):
            a, b = self.ex(e.left, f), self.ex(e.right, f)
            if e.op == "and":
                return f"(if (result i32) {a} (then {b}) (else (i32.const 0)))"
            return f"(if (result i32) {a} (then (i32.const 1)) (else {b}))"
        if isinstance(e, ir.Not):
            return f"(i32.eqz {self.ex(e.value, f)})"
        if isinstance(e, ir.Truthy):
            v = self.ex(e.value, f)
            if e.value.type == STR:
                return f"(i64.ne (i64.shr_u {v} (i64.const 32)) (i64.const 0))"
            if e.value.type == OPT_STR:
                return f"(call {self.use('$truthy')} {v})"
            if e.value.type == INT:
                return f"(i64.ne {v} (i64.const 0))"
            return f"(i32.ne (i32.load {v}) (i32.const 0))"
        if isinstance(e, ir.StrMethod):
            s = self.ex(e.value, f)
            arg = self.ex(e.arg, f) if e.arg is not None else ""
            if e.method in ("lower", "upper"):
                return f"(call {self.use('$s_case')} {s} (i32.const {int(e.method == 'upper')}))"
            if e.method == "strip":
                return f"(call {self.use('$s_strip')} {s})"
            fn = {"startswith": "$s_starts", "endswith": "$s_ends", "removeprefix": "$s_rmprefix",
                  "removesuffix": "$s_rmsuffix"}[e.method]
            return f"(call {self.use(fn)} {s} {arg})"
        if isinstance(e, ir.Len):
            v = self.ex(e.value, f)
            if e.value.type == LIST:
                return f"(i64.extend_i32_u (i32.load {v}))"
            return f"(i64.shr_u {v} (i64.const 32))"
        if isinstance(e, ir.HeaderGet):
            return f"(call {self.use('$hget')} (i32.const {_MAPS[e.map]}) {self.ex(e.name, f)})"
        if isinstance(e, ir.Pseudo):
            return f"(call {self.use('$pseudo')} {self.const_str(e.name)})"
        if isinstance(e, ir.Status):
            return f"(call {self.use('$status')})"
        if isinstance(e, ir.CallHelper):
            return f"(call $h_{e.name} {' '.join(self.ex(a, f) for a in e.args)})"
        raise AssertionError(type(e))

    def ptr_len(self, e: Expr, f: _Fn) -> tuple[str, str, str, str]:
        """(setup instructions, ptr, len, packed) of a str expression evaluated once; the last three
        may be repeated."""
        if isinstance(e, ir.Const):
            raw = wire_bytes(str(e.value))
            seg = self.mb.data(raw) if raw else None
            return "", f"(i32.const {seg.offset if seg else 0})", f"(i32.const {len(raw)})", self.ex(e, f)
        if isinstance(e, ir.ConfigRef):
            assert self.layout is not None
            slot = self.layout.slot(e.field)
            return "", f"(i32.load (i32.const {slot}))", f"(i32.load (i32.const {slot + 4}))", self.ex(e, f)
        setup = ""
        if isinstance(e, ir.Var):
            v = f"(local.get $v_{e.name})"
        else:
            t = f.temp("i64")
            setup, v = f"(local.set {t} {self.ex(e, f)})", f"(local.get {t})"
        return setup, f"(i32.wrap_i64 {v})", f"(i32.wrap_i64 (i64.shr_u {v} (i64.const 32)))", v

    # -- statements -----------------------------------------------------------------------------

    def block(self, body: tuple[Stmt, ...], f: _Fn) -> str:
        return "\n".join(self.stmt(s, f) for s in body)

    def guard(self, s: Stmt, code: str) -> str:
        """Skip ``code`` (a side effect) when an allocation of this statement failed."""
        if self.stmt_allocates(s) and not isinstance(s, ir.Respond):
            return f"(if (i32.eqz (global.get $oom)) (then {code}))"
        return code

    def after(self, s: Stmt, f: _Fn) -> str:
        """End the function when an allocation of statement ``s`` failed."""
        if not self.stmt_allocates(s):
            return ""
        if f.fn.is_callback:
            return "\n(br_if $exit (global.get $oom))"
        zero = "" if f.fn.returns == VOID else " " + _zero(f.fn.returns)
        return f"\n(if (global.get $oom) (then (return{zero})))"

    def stmt(self, s: Stmt, f: _Fn) -> str:
        return self._stmt(s, f) + self.after(s, f)

    def _stmt(self, s: Stmt, f: _Fn) -> str:
        mb = self.mb
        if isinstance(s, ir.Assign):
            return f"(local.set $v_{s.name} {self.ex(s.value, f)})"
        if isinstance(s, ir.If):
            orelse = f"\n(else {self.block(s.orelse, f)})" if s.orelse else ""
            return f"(if {self.ex(s.cond, f)}\n(then {self.block(s.body, f)}){orelse})"
        if isinstance(s, ir.For):
            self.labels += 1
            n = self.labels
            lst, i = f.temp("i32"), f.temp("i32")
            f.loops.append(n)
            body = self.block(s.body, f)
            f.loops.pop()
            return f"""(local.set {lst} {self.ex(s.iterable, f)})
(local.set {i} (i32.const 0))
(block $brk{n}
  (loop $top{n}
    (br_if $brk{n} (i32.ge_u (local.get {i}) (i32.load (local.get {lst}))))
    (local.set $v_{s.name} (i64.load offset=8 (i32.add (local.get {lst}) (i32.shl (local.get {i}) (i32.const 3)))))
    (local.set {i} (i32.add (local.get {i}) (i32.const 1)))
    (block $cont{n}
{body})
    (br $top{n})))"""
        if isinstance(s, ir.Break):
            return f"(br $brk{f.loops[-1]})"
        if isinstance(s, ir.Continue):
            return f"(br $cont{f.loops[-1]})"
        if isinstance(s, ir.Return):
            if f.fn.is_callback:
                return "(br $exit)"
            if s.value is None:
                return "(return)"
            return f"(return {self.ex(s.value, f)})"
        if isinstance(s, ir.HeaderOp):
            return self.header_op(s, f)
        if isinstance(s, ir.Respond):
            return self.respond(s, f)
        if isinstance(s, ir.ClearRouteCache):
            return mb.clear_route_cache()
        if isinstance(s, ir.Log):
            if isinstance(s.text, ir.Const):
                return mb.log(_LEVELS[s.level], wire_bytes(str(s.text.value)))
            return self.guard(s, f"(call {self.use('$log')} (i32.const {_LEVELS[s.level]}) {self.ex(s.text, f)})")
        if isinstance(s, ir.ExprStmt):
            call = self.ex(s.value, f)
            return call if s.value.type == VOID else f"(drop {call})"
        raise AssertionError(type(s))

    def header_op(self, s: ir.HeaderOp, f: _Fn) -> str:
        mb = self.mb
        where = f"{s.map}.headers.{s.op}"
        n_setup, n_ptr, n_len, n_packed = self.ptr_len(s.name, f)
        fn = mb.use(_HOST_OPS[s.op])
        v_setup = v_packed = ""
        if s.value is not None:
            v_setup, v_ptr, v_len, v_packed = self.ptr_len(s.value, f)
            call = f"(drop (call {fn} (i32.const {_MAPS[s.map]}) {n_ptr} {n_len} {v_ptr} {v_len}))"
        else:
            call = f"(drop (call {fn} (i32.const {_MAPS[s.map]}) {n_ptr} {n_len}))"
        if "$pairs" in self.used:
            call += "\n(global.set $pc_ok (i32.const 0))"  # the cached map is stale now
        if s.value is not None and not s.value_checked:
            call = (f"(if (call {self.use('$clean')} {v_packed})\n  (then {call})\n"
                    f"  (else {mb.log(LogLevel.WARN, ir.SKIP_VALUE.format(op=where))}))")
        if not s.name_checked:
            call = (f"(if (call {self.use('$tok')} {n_packed})\n  (then {call})\n"
                    f"  (else {mb.log(LogLevel.WARN, ir.SKIP_NAME.format(op=where))}))")
        return "\n".join(x for x in (n_setup, v_setup, self.guard(s, call)) if x)

    def _reads_headers(self) -> bool:
        for fn in self.p.functions.values():
            for st in ir.walk_stmts(fn.body):
                for e in ir.stmt_exprs(st):
                    for sub in ir.walk_exprs(e):
                        if isinstance(sub, (ir.HeaderGet, ir.Pseudo, ir.Status)) or (
                                isinstance(sub, ir.Contains) and sub.kind == "headers"):
                            return True
        return False

    def respond(self, s: ir.Respond, f: _Fn) -> str:
        fn = self.use("$respond")
        n = len(s.headers)
        # arguments in Python's order: status, body, then the header values
        st, bd, arr = f.temp("i64"), f.temp("i64"), f.temp("i32")
        parts = [f"(local.set {st} {self.ex(s.status, f)})", f"(local.set {bd} {self.ex(s.body, f)})"]
        stores = []
        for i, (name, value) in enumerate(s.headers):
            t = f.temp("i64")
            parts.append(f"(local.set {t} {self.ex(value, f)})")
            stores.append(f"(i64.store offset={16 * i} (local.get {arr}) {self.const_str(name)})")
            stores.append(f"(i64.store offset={16 * i + 8} (local.get {arr}) (local.get {t}))")
        parts.append(f"(local.set {arr} (call {self.use('$new')} (i32.const {max(16 * n, 8)})))")
        inner = "\n".join([*stores, f"(call {fn} (local.get {st}) (local.get {bd}) (local.get {arr}) (i32.const {n}))"])
        parts.append(f"(if (i32.eqz (global.get $oom)) (then {inner}))")
        return "\n".join(parts)

    # -- functions ------------------------------------------------------------------------------

    def function(self, fn: Function) -> None:
        f = _Fn(fn)
        body = self.block(fn.body, f)
        local_decls = " ".join(f"(local $v_{n} {_wasm_type(t)})" for n, t in fn.locals.items())
        local_decls += " " + " ".join(f"(local {n} {t})" for n, t in f.temps)
        if fn.is_callback:
            mb = self.mb
            prologue = [mb.reset_heap()]
            if "$new" in self.used:
                prologue.append("(global.set $oom (i32.const 0))")
            if "$pairs" in self.used:
                prologue.append("(global.set $pc_ok (i32.const 0))")
            if "$respond" in self.used:
                prologue.append("(global.set $responded (i32.const 0))")
            epilogue = []
            if "$new" in self.used:
                epilogue.append(f"(if (global.get $oom) (then {mb.log(LogLevel.ERROR, ir.OUT_OF_MEMORY)}))")
            result = "(global.get $responded)" if "$respond" in self.used else "(i32.const 0)"
            cb = "proxy_on_request_headers" if fn.name == "on_request_headers" else "proxy_on_response_headers"
            code = "\n".join([*prologue, f"(block $exit\n{body})", *epilogue, result])
            mb.callback(cb, code, locals_=local_decls)
            return
        params = " ".join(f"(param $v_{n} {_wasm_type(t)})" for n, t in fn.params)
        result = "" if fn.returns == VOID else f"(result {_wasm_type(fn.returns)})"
        tail = "" if fn.returns == VOID else _zero(fn.returns)
        self.mb.func(f"(func $h_{fn.name} {params} {result} {local_decls}\n{body}\n{tail})")

    def compile(self) -> str:
        # which helpers allocate (transitively): callees are compiled first
        helpers = self.p.helpers()
        for fn in helpers:
            self.allocating[fn.name] = self.body_allocates(fn.body)
        if self.p.config is not None:
            self.layout = add_config(self.mb, self.p.config, log_name=self.p.log_name)
        if self._reads_headers():
            self.use("$hget")  # before any header write, which must then drop the cached map
        for fn in helpers:
            self.function(fn)
        # callbacks last: their prologues depend on the runtime the helpers used; render them after
        # a first pass over their bodies has pulled in everything they use
        for name in self.p.callbacks:
            fn = self.p.functions[name]
            probe = _Fn(fn)
            self.block(fn.body, probe)  # registers runtime use
        for name in self.p.callbacks:
            self.function(self.p.functions[name])
        return self.mb.render()


def render_python_filter(program: Program, *, abi: str = DEFAULT_ABI) -> str:
    """The WAT text of the module for a checked filter (see the module docstring)."""
    return _Compiler(program, abi).compile()


def compile_program(program: Program, *, abi: str = DEFAULT_ABI) -> bytes:
    return assemble(render_python_filter(program, abi=abi))


def build_python_filter(path: str | Path, class_name: str | None = None, *, abi: str = DEFAULT_ABI) -> bytes:
    """Check ``path`` (``FILE.py``, the filter class ``class_name`` or its only one) and compile it to a
    proxy-wasm module. Raises a one-line :class:`~meshfilter.sdk.checker.FilterSourceError` for a
    construct that cannot be compiled exactly."""
    from meshfilter.sdk.checker import check_file

    return compile_program(check_file(path, class_name), abi=abi)
