"""Header-tagging rules (meshfilter.filters.tagging) compiled to a proxy-wasm module.

The module has no configuration: the rules are compiled in. On ``proxy_on_request_headers`` it:

1. frees the previous request's allocations (bump allocator reset: memory stays bounded);
2. reads the request headers once with ``proxy_get_header_map_pairs``;
3. for each header name some rule looks at, computes the *seen value* exactly as the reference
   semantics define it: every value of that name (names compared ASCII case-insensitively), in order,
   joined with ``","``; absent when there is none. A single value is used in place; several are
   joined into a heap buffer;
4. tries the rules in order (first match wins; ``exact``/``prefix``/``suffix``/``contains`` compare
   UTF-8 bytes, ``contains`` is a plain substring search, ``present``/``absent`` test existence) and
   applies the winning rule's actions, else the default actions, each with
   ``proxy_replace_header_map_value`` (one value, whatever the request carried);
5. when it changed a header, clears the route cache (foreign function ``clear_route_cache``; ABI
   0.1.0: ``proxy_clear_route_cache``) so routing sees the tag even on older proxies; then continues.

Exports: the ABI marker, ``memory``, the allocator and ``proxy_on_request_headers`` only.
Lua-only matchers (``lua-pattern``) are refused with :class:`~meshfilter.errors.ConfigError` naming
the rule. Generation reuses :class:`meshfilter.wasm.codegen.ModuleBuilder`.
"""

from __future__ import annotations

from meshfilter.errors import UsageError
from meshfilter.filters import tagging
from meshfilter.filters.tagging import RuleSet
from meshfilter.wasm.codegen import DEFAULT_ABI, MapType, ModuleBuilder, Segment

# Byte helpers. The serialized header map is host data, but the walk is bounds-checked anyway so
# that no input can make the module trap.
_HELPERS_WAT = r"""
(global $pairs (mut i32) (i32.const 0))
(global $pairs_end (mut i32) (i32.const 0))
(global $gv_ptr (mut i32) (i32.const 0))
(global $gv_len (mut i32) (i32.const 0))
;; $n bytes at $a equal $n bytes at $b
(func $mem_eq (param $a i32) (param $b i32) (param $n i32) (result i32)
  (block $no
    (loop $l
      (if (i32.eqz (local.get $n)) (then (return (i32.const 1))))
      (br_if $no (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))))
      (local.set $a (i32.add (local.get $a) (i32.const 1)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
  (i32.const 0))
;; header key ($k, $kl) equals the lower-case name ($n, $nl), ASCII case-insensitively
(func $key_eq (param $k i32) (param $kl i32) (param $n i32) (param $nl i32) (result i32) (local $c i32)
  (if (i32.ne (local.get $kl) (local.get $nl)) (then (return (i32.const 0))))
  (block $no
    (loop $l
      (if (i32.eqz (local.get $kl)) (then (return (i32.const 1))))
      (local.set $c (i32.load8_u (local.get $k)))
      (if (i32.lt_u (i32.sub (local.get $c) (i32.const 65)) (i32.const 26))
        (then (local.set $c (i32.or (local.get $c) (i32.const 32)))))
      (br_if $no (i32.ne (local.get $c) (i32.load8_u (local.get $n))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (local.set $kl (i32.sub (local.get $kl) (i32.const 1)))
      (br $l)))
  (i32.const 0))
(func $starts (param $v i32) (param $vl i32) (param $p i32) (param $pl i32) (result i32)
  (if (result i32) (i32.lt_u (local.get $vl) (local.get $pl))
    (then (i32.const 0))
    (else (call $mem_eq (local.get $v) (local.get $p) (local.get $pl)))))
(func $ends (param $v i32) (param $vl i32) (param $p i32) (param $pl i32) (result i32)
  (if (result i32) (i32.lt_u (local.get $vl) (local.get $pl))
    (then (i32.const 0))
    (else (call $mem_eq (i32.sub (i32.add (local.get $v) (local.get $vl)) (local.get $pl))
                        (local.get $p) (local.get $pl)))))
(func $equals (param $v i32) (param $vl i32) (param $p i32) (param $pl i32) (result i32)
  (if (result i32) (i32.ne (local.get $vl) (local.get $pl))
    (then (i32.const 0))
    (else (call $mem_eq (local.get $v) (local.get $p) (local.get $pl)))))
(func $contains (param $v i32) (param $vl i32) (param $p i32) (param $pl i32) (result i32)
  (local $last i32) (local $c i32)
  (if (i32.lt_u (local.get $vl) (local.get $pl)) (then (return (i32.const 0))))
  (if (i32.eqz (local.get $pl)) (then (return (i32.const 1))))
  (local.set $last (i32.add (local.get $v) (i32.sub (local.get $vl) (local.get $pl))))
  (local.set $c (i32.load8_u (local.get $p)))
  ;; scan for the first byte inline; compare the rest only where it matches
  (loop $l
    (if (i32.eq (i32.load8_u (local.get $v)) (local.get $c))
      (then (if (call $mem_eq (local.get $v) (local.get $p) (local.get $pl)) (then (return (i32.const 1))))))
    (local.set $v (i32.add (local.get $v) (i32.const 1)))
    (br_if $l (i32.le_u (local.get $v) (local.get $last))))
  (i32.const 0))
;; The seen value of header ($n, $nl): returns 1 and sets $gv_ptr/$gv_len when present, else 0.
(func $gather (param $n i32) (param $nl i32) (result i32)
  (local $count i32) (local $sizes i32) (local $d i32) (local $kl i32) (local $vl i32) (local $v i32)
  (local $found i32) (local $buf i32) (local $len i32)
  (global.set $gv_ptr (i32.const 0))
  (global.set $gv_len (i32.const 0))
  (if (i32.lt_u (i32.sub (global.get $pairs_end) (global.get $pairs)) (i32.const 4))
    (then (return (i32.const 0))))
  (local.set $count (i32.load (global.get $pairs)))
  (local.set $sizes (i32.add (global.get $pairs) (i32.const 4)))
  ;; 4 + 8 * count must fit (count checked first so the multiplication cannot wrap)
  (if (i32.gt_u (local.get $count) (i32.shr_u (i32.sub (global.get $pairs_end) (local.get $sizes)) (i32.const 3)))
    (then (return (i32.const 0))))
  (local.set $d (i32.add (local.get $sizes) (i32.shl (local.get $count) (i32.const 3))))
  (block $end
    (loop $l
      (br_if $end (i32.eqz (local.get $count)))
      (local.set $kl (i32.load (local.get $sizes)))
      (local.set $vl (i32.load offset=4 (local.get $sizes)))
      ;; key, NUL, value, NUL must lie within the map
      (br_if $end (i32.gt_u (local.get $kl) (i32.sub (global.get $pairs_end) (local.get $d))))
      (local.set $v (i32.add (i32.add (local.get $d) (local.get $kl)) (i32.const 1)))
      (br_if $end (i32.gt_u (local.get $v) (global.get $pairs_end)))
      (br_if $end (i32.gt_u (local.get $vl) (i32.sub (global.get $pairs_end) (local.get $v))))
      (br_if $end (i32.ge_u (i32.add (local.get $v) (local.get $vl)) (global.get $pairs_end)))
      ;; (lengths compared here first: most keys differ in length, and a call costs more than the compare)
      (if (if (result i32) (i32.eq (local.get $kl) (local.get $nl))
            (then (call $key_eq (local.get $d) (local.get $kl) (local.get $n) (local.get $nl))) (else (i32.const 0)))
        (then
          (if (i32.eqz (local.get $found))
            (then
              ;; first value: use it in place
              (global.set $gv_ptr (local.get $v))
              (global.set $gv_len (local.get $vl))
              (local.set $found (i32.const 1)))
            (else
              (if (i32.eqz (local.get $buf))
                (then
                  ;; second value: join into a buffer as large as the whole map (an upper bound)
                  (local.set $buf (call $alloc (i32.sub (global.get $pairs_end) (global.get $pairs))))
                  (br_if $end (i32.eqz (local.get $buf)))
                  (memory.copy (local.get $buf) (global.get $gv_ptr) (global.get $gv_len))
                  (local.set $len (global.get $gv_len))
                  (global.set $gv_ptr (local.get $buf))))
              (i32.store8 (i32.add (local.get $buf) (local.get $len)) (i32.const 44))
              (memory.copy (i32.add (i32.add (local.get $buf) (local.get $len)) (i32.const 1))
                           (local.get $v) (local.get $vl))
              (local.set $len (i32.add (i32.add (local.get $len) (local.get $vl)) (i32.const 1)))
              (global.set $gv_len (local.get $len))))))
      (local.set $d (i32.add (i32.add (local.get $v) (local.get $vl)) (i32.const 1)))
      (local.set $sizes (i32.add (local.get $sizes) (i32.const 8)))
      (local.set $count (i32.sub (local.get $count) (i32.const 1)))
      (br $l)))
  (local.get $found))
"""

_COMPARE = {"exact": "$equals", "prefix": "$starts", "suffix": "$ends", "contains": "$contains"}


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def render_tag_rules(rs: RuleSet, *, abi: str = DEFAULT_ABI, clear_route_cache: bool = True) -> str:
    """The WAT text of the tagging module for rule set ``rs`` (see the module docstring)."""
    tagging.validate_ruleset(rs)
    tagging.require_portable(rs, backend="Wasm")
    mb = ModuleBuilder(abi)
    mb.func(_HELPERS_WAT)
    slots = mb.reserve(8)
    get_pairs = mb.use("proxy_get_header_map_pairs")

    names = rs.matched_names()
    name_segs: dict[str, Segment] = {n: mb.data(_utf8(n)) for n in names}
    index = {n: i for i, n in enumerate(names)}

    def actions(pairs: tuple[tuple[str, str], ...]) -> str:
        lines = []
        for name, value in pairs:
            ns, vs = mb.data(_utf8(name)), mb.data(_utf8(value))
            lines.append(mb.replace_header(ns.ptr, ns.len, vs.ptr, vs.len))
        if pairs and clear_route_cache:
            lines.append(mb.clear_route_cache())
        return "\n      ".join(lines)

    gather = []
    for n in names:
        i, seg = index[n], name_segs[n]
        gather.append(f"(local.set $f{i} (call $gather {seg.ptr} {seg.len})) "
                      f"(local.set $p{i} (global.get $gv_ptr)) (local.set $l{i} (global.get $gv_len))")

    chain: list[str] = []
    for rule in rs.rules:
        i = index[rule.match.header]
        kind = rule.match.kind
        if kind == "present":
            cond = f"(local.get $f{i})"
        elif kind == "absent":
            cond = f"(i32.eqz (local.get $f{i}))"
        else:
            lit = mb.data(_utf8(rule.match.value or ""))
            cond = (f"(i32.and (local.get $f{i}) (call {_COMPARE[kind]} (local.get $p{i}) (local.get $l{i}) "
                    f"{lit.ptr} {lit.len}))")
        chain.append(f"""    ;; {_comment(rule.name)}: {kind} on {rule.match.header}
    (if {cond}
      (then
      {actions(rule.set)}
      (br $done)))""")
    default = actions(rs.default)
    chain_text = "\n".join(chain)
    gather_text = "\n  ".join(gather)
    locals_ = " ".join(f"(local $f{i} i32) (local $p{i} i32) (local $l{i} i32)" for i in range(len(names)))
    body = f"""
  {mb.reset_heap()}
  (i64.store (i32.const {slots.offset}) (i64.const 0))
  (global.set $pairs (i32.const 0))
  (global.set $pairs_end (i32.const 0))
  (if (i32.eqz (call {get_pairs} (i32.const {MapType.REQUEST_HEADERS}) (i32.const {slots.offset})
                                  (i32.const {slots.offset + 4})))
    (then
      (global.set $pairs (i32.load (i32.const {slots.offset})))
      (if (global.get $pairs)
        (then (global.set $pairs_end (i32.add (global.get $pairs) (i32.load (i32.const {slots.offset + 4}))))))))
  {gather_text}
  (block $done
{chain_text}
    {default})
  {mb.reset_heap()}
  (i32.const 0)"""
    mb.callback("proxy_on_request_headers", body, locals_=locals_)
    return mb.render()


def _comment(name: str) -> str:
    """A rule name made safe for a WAT line comment."""
    return "".join(c if 0x20 <= ord(c) < 0x7F else "?" for c in name)


def build_tag_rules(rs: RuleSet, *, abi: str = DEFAULT_ABI, clear_route_cache: bool = True) -> bytes:
    """The tagging proxy-wasm module for ``rs`` as Wasm bytes.

    Raises :class:`~meshfilter.errors.ConfigError` (a UsageError) naming the rule when the rule set
    uses a Lua-only matcher, or is otherwise invalid.
    """
    from meshfilter.wasm.codegen import assemble

    if not isinstance(rs, RuleSet):
        raise UsageError(f"build_tag_rules needs a RuleSet, got {type(rs).__name__}", where="build_tag_rules",
                         hint="load one with meshfilter.filters.tagging.load_rules(path)")
    return assemble(render_tag_rules(rs, abi=abi, clear_route_cache=clear_route_cache))
