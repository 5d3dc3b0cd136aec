"""The propagate-header proxy-wasm module, generated as WAT and assembled with wasmtime.

On ``proxy_on_configure`` the module parses the plugin configuration with a strict JSON parser
written in WAT (UTF-8 validated, escapes decoded in place, nesting at most 64, every value type
skipped, the last duplicate key wins), checks it exactly like
:func:`meshfilter.filters.propagate.parse_config` and, on a problem, logs
``propagate-header: <PROBLEMS text>`` at level error and returns false so the host refuses the
plugin. The header name is lower-cased once, then name and value are moved to the bottom of the
heap and kept there (so a refused re-configuration leaves the previous one in force).

On ``proxy_on_request_headers`` it replaces the header (one value, whatever the request carried),
clears the route cache and continues. Nothing is allocated per request; the bump allocator is
reset at the start of every callback, so linear memory stays bounded.

Exports: the ABI marker, ``memory``, the allocator, ``proxy_on_configure`` and
``proxy_on_request_headers``: nothing else, because Envoy makes one VM call per exported
callback per request.
"""

from __future__ import annotations

from meshfilter.errors import UsageError
from meshfilter.filters import propagate as oracle
from meshfilter.wasm.codegen import DEFAULT_ABI, LogLevel, ModuleBuilder

# verdict codes returned by $parse, in the order parse_config checks them
PROBLEM_ORDER = ("invalid_json", "not_object", "missing_name", "missing_value", "name_not_string",
                 "value_not_string", "empty_name", "bad_name", "bad_value")
ROOT_ID_MISMATCH = "plugin root id does not match the module's root id"

# simple escapes: pairs of (escape letter, decoded byte)
_ESCAPES = b'""\\\\//b\x08f\x0cn\nr\rt\t'


def _tchar_bitmap() -> bytes:
    bits = bytearray(16)
    for b in oracle.TCHARS:
        bits[b >> 3] |= 1 << (b & 7)
    return bytes(bits)


_JSON_WAT = r"""
(global $p (mut i32) (i32.const 0))
(global $e (mut i32) (i32.const 0))
(global $s (mut i32) (i32.const 0))
(func $peek (result i32)
  (if (result i32) (i32.lt_u (global.get $p) (global.get $e))
    (then (i32.load8_u (global.get $p))) (else (i32.const -1))))
(func $next (result i32) (local $c i32)
  (local.set $c (call $peek))
  (global.set $p (i32.add (global.get $p) (i32.ge_s (local.get $c) (i32.const 0))))
  (local.get $c))
(func $ws (result i32) (local $c i32)
  (loop $l
    (local.set $c (call $peek))
    (if (i32.or (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 9)))
                (i32.or (i32.eq (local.get $c) (i32.const 10)) (i32.eq (local.get $c) (i32.const 13))))
      (then (global.set $p (i32.add (global.get $p) (i32.const 1))) (br $l))))
  (local.get $c))
(func $hex4 (result i32) (local $i i32) (local $v i32) (local $c i32)
  (local.set $i (i32.const 4))
  (loop $l
    (local.set $c (call $next))
    (if (i32.lt_u (i32.sub (local.get $c) (i32.const 48)) (i32.const 10))
      (then (local.set $c (i32.sub (local.get $c) (i32.const 48))))
      (else
        (local.set $c (i32.sub (i32.or (local.get $c) (i32.const 32)) (i32.const 97)))
        (if (i32.ge_u (local.get $c) (i32.const 6)) (then (return (i32.const -1))))
        (local.set $c (i32.add (local.get $c) (i32.const 10)))))
    (local.set $v (i32.or (i32.shl (local.get $v) (i32.const 4)) (local.get $c)))
    (br_if $l (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
  (local.get $v))
;; write code point $u as UTF-8 at $d; return the new end
(func $put (param $d i32) (param $u i32) (result i32) (local $n i32)
  (if (i32.lt_u (local.get $u) (i32.const 0x80))
    (then (i32.store8 (local.get $d) (local.get $u)) (return (i32.add (local.get $d) (i32.const 1)))))
  (local.set $n (i32.add (i32.add (i32.const 1) (i32.ge_u (local.get $u) (i32.const 0x800)))
                         (i32.ge_u (local.get $u) (i32.const 0x10000))))
  ;; lead byte: 0xC0 / 0xE0 / 0xF0 with the top bits of $u
  (i32.store8 (local.get $d)
    (i32.or (i32.shr_s (i32.const -128) (local.get $n))
            (i32.shr_u (local.get $u) (i32.mul (local.get $n) (i32.const 6)))))
  (loop $l
    (local.set $d (i32.add (local.get $d) (i32.const 1)))
    (local.set $n (i32.sub (local.get $n) (i32.const 1)))
    (i32.store8 (local.get $d)
      (i32.or (i32.const 0x80) (i32.and (i32.shr_u (local.get $u) (i32.mul (local.get $n) (i32.const 6)))
                                        (i32.const 63))))
    (br_if $l (local.get $n)))
  (i32.add (local.get $d) (i32.const 1)))
;; a string at $p (the opening quote): decoded in place from $s; returns its length or -1
(func $str (result i32) (local $d i32) (local $c i32) (local $n i32) (local $lo i32) (local $hi i32) (local $u i32)
  (global.set $p (i32.add (global.get $p) (i32.const 1)))
  (global.set $s (global.get $p))
  (local.set $d (global.get $p))
  (block $fail
    (loop $l
      (local.set $c (call $next))
      (br_if $fail (i32.lt_s (local.get $c) (i32.const 32)))
      (if (i32.eq (local.get $c) (i32.const 34))
        (then (return (i32.sub (local.get $d) (global.get $s)))))
      (if (i32.eq (local.get $c) (i32.const 92))
        (then
          (local.set $c (call $next))
          (if (i32.eq (local.get $c) (i32.const 117))
            (then
              (local.set $u (call $hex4))
              (br_if $fail (i32.lt_s (local.get $u) (i32.const 0)))
              ;; a low surrogate first is a lone one
              (br_if $fail (i32.eq (i32.and (local.get $u) (i32.const 0xFC00)) (i32.const 0xDC00)))
              (if (i32.eq (i32.and (local.get $u) (i32.const 0xFC00)) (i32.const 0xD800))
                (then
                  (br_if $fail (i32.ne (call $next) (i32.const 92)))
                  (br_if $fail (i32.ne (call $next) (i32.const 117)))
                  (local.set $lo (call $hex4))
                  (br_if $fail (i32.ne (i32.and (local.get $lo) (i32.const 0xFC00)) (i32.const 0xDC00)))
                  (local.set $u (i32.add (i32.const 0x10000)
                    (i32.or (i32.shl (i32.and (local.get $u) (i32.const 0x3FF)) (i32.const 10))
                            (i32.and (local.get $lo) (i32.const 0x3FF)))))))
              (local.set $d (call $put (local.get $d) (local.get $u)))
              (br $l)))
          ;; simple escapes: scan the (letter, byte) pairs
          (local.set $n (i32.const ESC_START))
          (loop $k
            (br_if $fail (i32.ge_u (local.get $n) (i32.const ESC_END)))
            (if (i32.eq (i32.load8_u (local.get $n)) (local.get $c))
              (then
                (i32.store8 (local.get $d) (i32.load8_u offset=1 (local.get $n)))
                (local.set $d (i32.add (local.get $d) (i32.const 1)))
                (br $l)))
            (local.set $n (i32.add (local.get $n) (i32.const 2)))
            (br $k))))
      (i32.store8 (local.get $d) (local.get $c))
      (local.set $d (i32.add (local.get $d) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $c) (i32.const 0x80)))
      ;; UTF-8: lead byte $c, then $n continuation bytes, the first in [$lo, $hi]
      (br_if $fail (i32.lt_u (local.get $c) (i32.const 0xC2)))
      (br_if $fail (i32.gt_u (local.get $c) (i32.const 0xF4)))
      (local.set $lo (i32.const 0x80))
      (local.set $hi (i32.const 0xBF))
      (local.set $n (i32.add (i32.add (i32.const 1) (i32.ge_u (local.get $c) (i32.const 0xE0)))
                             (i32.ge_u (local.get $c) (i32.const 0xF0))))
      (if (i32.eq (local.get $c) (i32.const 0xE0)) (then (local.set $lo (i32.const 0xA0))))
      (if (i32.eq (local.get $c) (i32.const 0xED)) (then (local.set $hi (i32.const 0x9F))))
      (if (i32.eq (local.get $c) (i32.const 0xF0)) (then (local.set $lo (i32.const 0x90))))
      (if (i32.eq (local.get $c) (i32.const 0xF4)) (then (local.set $hi (i32.const 0x8F))))
      (loop $k
        (local.set $c (call $next))
        (br_if $fail (i32.lt_s (local.get $c) (local.get $lo)))
        (br_if $fail (i32.gt_s (local.get $c) (local.get $hi)))
        (i32.store8 (local.get $d) (local.get $c))
        (local.set $d (i32.add (local.get $d) (i32.const 1)))
        (local.set $lo (i32.const 0x80))
        (local.set $hi (i32.const 0xBF))
        (br_if $k (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
      (br $l)))
  (i32.const -1))
;; digits at $p: how many
(func $digits (result i32) (local $n i32)
  (loop $l
    (if (i32.lt_u (i32.sub (call $peek) (i32.const 48)) (i32.const 10))
      (then (global.set $p (i32.add (global.get $p) (i32.const 1)))
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (br $l))))
  (local.get $n))
;; a number at $p; 1 if well-formed
(func $num (result i32) (local $c i32)
  (if (i32.eq (call $peek) (i32.const 45)) (then (drop (call $next))))
  (local.set $c (call $peek))
  (if (i32.eq (local.get $c) (i32.const 48))
    (then (drop (call $next)))
    (else (if (i32.eqz (call $digits)) (then (return (i32.const 0))))))
  (if (i32.eq (call $peek) (i32.const 46))
    (then (drop (call $next)) (if (i32.eqz (call $digits)) (then (return (i32.const 0))))))
  (if (i32.eq (i32.or (call $peek) (i32.const 32)) (i32.const 101))
    (then
      (drop (call $next))
      (local.set $c (call $peek))
      (if (i32.or (i32.eq (local.get $c) (i32.const 43)) (i32.eq (local.get $c) (i32.const 45)))
        (then (drop (call $next))))
      (if (i32.eqz (call $digits)) (then (return (i32.const 0))))))
  (i32.const 1))
;; the literal at [$a, $a+$n) at $p; 1 if it matches
(func $lit (param $a i32) (param $n i32) (result i32)
  (loop $l
    (if (i32.ne (call $next) (i32.load8_u (local.get $a))) (then (return (i32.const 0))))
    (local.set $a (i32.add (local.get $a) (i32.const 1)))
    (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
  (i32.const 1))
;; bytes equal
(func $eq (param $a i32) (param $n i32) (param $b i32) (param $m i32) (result i32)
  (if (i32.ne (local.get $n) (local.get $m)) (then (return (i32.const 0))))
  (block $out
    (loop $l
      (br_if $out (i32.eqz (local.get $n)))
      (if (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))) (then (return (i32.const 0))))
      (local.set $a (i32.add (local.get $a) (i32.const 1)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
  (i32.const 1))
;; an object member's key and colon; returns 1 (head_tag_name), 2 (head_tag_value), 0 (other key or
;; not at the top level) or -1 (malformed)
(func $member (param $top i32) (result i32) (local $n i32) (local $k i32)
  (if (i32.ne (call $ws) (i32.const 34)) (then (return (i32.const -1))))
  (local.set $n (call $str))
  (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const -1))))
  (if (local.get $top)
    (then
      (if (call $eq (global.get $s) (local.get $n) (i32.const NAME_KEY) (i32.const NAME_KEY_LEN))
        (then (local.set $k (i32.const 1))))
      (if (call $eq (global.get $s) (local.get $n) (i32.const VALUE_KEY) (i32.const VALUE_KEY_LEN))
        (then (local.set $k (i32.const 2))))))
  (if (i32.ne (call $ws) (i32.const 58)) (then (return (i32.const -1))))
  (global.set $p (i32.add (global.get $p) (i32.const 1)))
  (local.get $k))
;; parse [$p, $e): 0 if valid, else the 1-based index of the problem in PROBLEM_ORDER.
;; On 0 the name is at $np/$nl (lower-cased) and the value at $vp/$vl.
(global $np (mut i32) (i32.const 0))
(global $nl (mut i32) (i32.const 0))
(global $vp (mut i32) (i32.const 0))
(global $vl (mut i32) (i32.const 0))
(func $parse (result i32)
  (local $c i32) (local $depth i32) (local $stack i64) (local $key i32) (local $k i32) (local $n i32)
  (local $top i32) (local $nt i32) (local $vt i32)
  (block $bad
    (block $done
      (local.set $top (call $ws))
      (loop $value
        (local.set $c (call $ws))
        (local.set $k (local.get $key))
        (local.set $key (i32.const 0))
        (if (i32.eq (local.get $k) (i32.const 1)) (then (local.set $nt (i32.const 2))))
        (if (i32.eq (local.get $k) (i32.const 2)) (then (local.set $vt (i32.const 2))))
        (block $after
          (if (i32.eq (local.get $c) (i32.const 34))
            (then
              (local.set $n (call $str))
              (br_if $bad (i32.lt_s (local.get $n) (i32.const 0)))
              (if (i32.eq (local.get $k) (i32.const 1))
                (then (local.set $nt (i32.const 1)) (global.set $np (global.get $s)) (global.set $nl (local.get $n))))
              (if (i32.eq (local.get $k) (i32.const 2))
                (then (local.set $vt (i32.const 1)) (global.set $vp (global.get $s)) (global.set $vl (local.get $n))))
              (br $after)))
          (if (i32.eq (i32.or (local.get $c) (i32.const 32)) (i32.const 123))
            (then
              ;; '{' or '['
              (br_if $bad (i32.ge_u (local.get $depth) (i32.const 64)))
              (local.set $depth (i32.add (local.get $depth) (i32.const 1)))
              (local.set $stack (i64.or (i64.shl (local.get $stack) (i64.const 1))
                                        (i64.extend_i32_u (i32.eq (local.get $c) (i32.const 123)))))
              (global.set $p (i32.add (global.get $p) (i32.const 1)))
              (if (i32.eq (call $ws) (i32.add (local.get $c) (i32.const 2)))
                (then
                  (global.set $p (i32.add (global.get $p) (i32.const 1)))
                  (local.set $depth (i32.sub (local.get $depth) (i32.const 1)))
                  (local.set $stack (i64.shr_u (local.get $stack) (i64.const 1)))
                  (br $after)))
              (if (i32.eq (local.get $c) (i32.const 123))
                (then
                  (local.set $key (call $member (i32.eq (local.get $depth) (i32.const 1))))
                  (br_if $bad (i32.lt_s (local.get $key) (i32.const 0)))))
              (br $value)))
          (if (i32.eq (local.get $c) (i32.const 116))
            (then (br_if $bad (i32.eqz (call $lit (i32.const LIT_TRUE) (i32.const 4)))) (br $after)))
          (if (i32.eq (local.get $c) (i32.const 102))
            (then (br_if $bad (i32.eqz (call $lit (i32.const LIT_FALSE) (i32.const 5)))) (br $after)))
          (if (i32.eq (local.get $c) (i32.const 110))
            (then (br_if $bad (i32.eqz (call $lit (i32.const LIT_NULL) (i32.const 4)))) (br $after)))
          (br_if $bad (i32.eqz (call $num))))
        ;; after a value: close containers, or go on after a comma
        (loop $close
          (local.set $c (call $ws))
          (br_if $done (i32.eqz (local.get $depth)))
          (if (i32.eq (local.get $c) (i32.const 44))
            (then
              (global.set $p (i32.add (global.get $p) (i32.const 1)))
              (if (i32.wrap_i64 (i64.and (local.get $stack) (i64.const 1)))
                (then
                  (local.set $key (call $member (i32.eq (local.get $depth) (i32.const 1))))
                  (br_if $bad (i32.lt_s (local.get $key) (i32.const 0)))))
              (br $value)))
          ;; ']' (93) in an array, '}' (125) in an object
          (br_if $bad (i32.ne (local.get $c)
            (i32.add (i32.const 93) (i32.shl (i32.wrap_i64 (i64.and (local.get $stack) (i64.const 1))) (i32.const 5)))))
          (global.set $p (i32.add (global.get $p) (i32.const 1)))
          (local.set $depth (i32.sub (local.get $depth) (i32.const 1)))
          (local.set $stack (i64.shr_u (local.get $stack) (i64.const 1)))
          (br $close))))
    ;; the whole input must be consumed
    (br_if $bad (i32.ne (global.get $p) (global.get $e)))
    (if (i32.ne (local.get $top) (i32.const 123)) (then (return (i32.const 2))))
    (if (i32.eqz (local.get $nt)) (then (return (i32.const 3))))
    (if (i32.eqz (local.get $vt)) (then (return (i32.const 4))))
    (if (i32.eq (local.get $nt) (i32.const 2)) (then (return (i32.const 5))))
    (if (i32.eq (local.get $vt) (i32.const 2)) (then (return (i32.const 6))))
    (if (i32.eqz (global.get $nl)) (then (return (i32.const 7))))
    ;; name: RFC 9110 token characters, lower-cased in place
    (local.set $n (i32.const 0))
    (loop $l
      (local.set $c (i32.load8_u (i32.add (global.get $np) (local.get $n))))
      (if (i32.or (i32.ge_u (local.get $c) (i32.const 128))
                  (i32.eqz (i32.and (i32.load8_u (i32.add (i32.const TCHARS) (i32.shr_u (local.get $c) (i32.const 3))))
                                    (i32.shl (i32.const 1) (i32.and (local.get $c) (i32.const 7))))))
        (then (return (i32.const 8))))
      (if (i32.lt_u (i32.sub (local.get $c) (i32.const 65)) (i32.const 26))
        (then (i32.store8 (i32.add (global.get $np) (local.get $n)) (i32.or (local.get $c) (i32.const 32)))))
      (br_if $l (i32.lt_u (local.tee $n (i32.add (local.get $n) (i32.const 1))) (global.get $nl))))
    ;; value: no CR, LF or NUL
    (local.set $n (i32.const 0))
    (block $ok
      (loop $l
        (br_if $ok (i32.ge_u (local.get $n) (global.get $vl)))
        (local.set $c (i32.load8_u (i32.add (global.get $vp) (local.get $n))))
        (if (i32.or (i32.eqz (local.get $c))
                    (i32.or (i32.eq (local.get $c) (i32.const 10)) (i32.eq (local.get $c) (i32.const 13))))
          (then (return (i32.const 9))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $l)))
    (return (i32.const 0)))
  (i32.const 1))
"""


def _validate_root_id(root_id: str) -> bytes:
    raw = root_id.encode("utf-8", "surrogatepass")
    if len(raw) > 256 or b"\0" in raw:
        raise UsageError("root id must be at most 256 bytes without NUL", where="root_id",
                         hint=f"the usual root id is {oracle.ROOT_ID}")
    return raw


def render_propagate_header(*, abi: str = DEFAULT_ABI, root_id: str = oracle.ROOT_ID) -> str:
    """The WAT text of the propagate-header module (see the module docstring)."""
    root = _validate_root_id(root_id)
    mb = ModuleBuilder(abi)
    esc = mb.data(_ESCAPES)
    tchars = mb.data(_tchar_bitmap())
    name_key = mb.data(oracle.NAME_KEY)
    value_key = mb.data(oracle.VALUE_KEY)
    lit_true, lit_false, lit_null = mb.data("true"), mb.data("false"), mb.data("null")
    prefix = mb.data(oracle.LOG_PREFIX)
    texts = [mb.data(oracle.PROBLEMS[p]) for p in PROBLEM_ORDER]
    # problem table: (offset u16, length u16) per problem, indexed by verdict - 1
    table = mb.data(b"".join(t.offset.to_bytes(2, "little") + t.length.to_bytes(2, "little") for t in texts),
                    align=4)
    json_wat = _JSON_WAT
    for sym, value in (("ESC_START", esc.offset), ("ESC_END", esc.offset + esc.length),
                       ("TCHARS", tchars.offset), ("NAME_KEY_LEN", name_key.length),
                       ("NAME_KEY", name_key.offset), ("VALUE_KEY_LEN", value_key.length),
                       ("VALUE_KEY", value_key.offset), ("LIT_TRUE", lit_true.offset),
                       ("LIT_FALSE", lit_false.offset), ("LIT_NULL", lit_null.offset)):
        json_wat = json_wat.replace(sym, str(value))
    mb.func(json_wat)
    # the configured header, kept at the bottom of the heap
    mb.global_("hn")
    mb.global_("hnl")
    mb.global_("hv")
    mb.global_("hvl")

    # log "propagate-header: <text>" at level error; the message is built on the heap
    mb.func(f"""
(func $problem (param $i i32) (local $t i32) (local $m i32) (local $n i32)
  (local.set $t (i32.add (i32.const {table.offset}) (i32.shl (i32.sub (local.get $i) (i32.const 1)) (i32.const 2))))
  (local.set $n (i32.load16_u offset=2 (local.get $t)))
  (local.set $m (call $alloc (i32.add (local.get $n) (i32.const {prefix.length}))))
  (if (i32.eqz (local.get $m))
    (then {mb.log_ptr(LogLevel.ERROR, prefix.ptr, prefix.len)} (return)))
  (memory.copy (local.get $m) {prefix.ptr} {prefix.len})
  (memory.copy (i32.add (local.get $m) (i32.const {prefix.length})) (i32.load16_u (local.get $t)) (local.get $n))
  {mb.log_ptr(LogLevel.ERROR, "(local.get $m)", f"(i32.add (local.get $n) (i32.const {prefix.length}))")})""")

    root_check = ""
    if root:
        want = mb.data(root)
        mismatch = mb.data(oracle.LOG_PREFIX + ROOT_ID_MISMATCH + " " + root_id)
        root_check = f"""
  ;; a host without the property, or an empty root id (the VM's default root context), is accepted
  (if (i32.eqz {mb.get_property(["plugin_root_id"])})
    (then
      (if (i32.and (i32.ne (global.get $out_len) (i32.const 0))
                   (i32.eqz (call $eq (global.get $out_ptr) (global.get $out_len) {want.ptr} {want.len})))
        (then {mb.log_ptr(LogLevel.ERROR, mismatch.ptr, mismatch.len)} (return (i32.const 0))))))
  {mb.reset_heap()}"""

    # proxy_on_configure(root_context_id $a, configuration_size $b)
    mb.callback("proxy_on_configure", f"""
  {mb.reset_heap()}{root_check}
  (drop {mb.read_plugin_configuration("(local.get $b)")})
  (global.set $p (global.get $out_ptr))
  (global.set $e (i32.add (global.get $out_ptr) (global.get $out_len)))
  (local.set $r (call $parse))
  (if (local.get $r) (then (call $problem (local.get $r)) (return (i32.const 0))))
  ;; keep name and value at the heap's start: move the lower-addressed one first (no overlap)
  (global.set $bump (global.get $heap_start))
  (if (i32.lt_u (global.get $np) (global.get $vp))
    (then
      (global.set $hn (global.get $bump))
      (memory.copy (global.get $hn) (global.get $np) (global.get $nl))
      (global.set $hv (i32.add (global.get $hn) (global.get $nl)))
      (memory.copy (global.get $hv) (global.get $vp) (global.get $vl)))
    (else
      (global.set $hv (global.get $bump))
      (memory.copy (global.get $hv) (global.get $vp) (global.get $vl))
      (global.set $hn (i32.add (global.get $hv) (global.get $vl)))
      (memory.copy (global.get $hn) (global.get $np) (global.get $nl))))
  (global.set $hnl (global.get $nl))
  (global.set $hvl (global.get $vl))
  (global.set $heap_base (i32.and (i32.add (i32.add (global.get $bump) (i32.add (global.get $nl) (global.get $vl)))
                                           (i32.const 7)) (i32.const -8)))
  {mb.reset_heap()}
  (i32.const 1)""", locals_="(local $r i32)")

    # proxy_on_request_headers(context_id, num_headers[, end_of_stream])
    mb.callback("proxy_on_request_headers", f"""
  (if (global.get $hnl)
    (then
      {mb.replace_header("(global.get $hn)", "(global.get $hnl)", "(global.get $hv)", "(global.get $hvl)")}
      {mb.clear_route_cache()}))
  (i32.const 0)""")
    return mb.render()


def build_propagate_header(*, abi: str = DEFAULT_ABI, root_id: str = oracle.ROOT_ID) -> bytes:
    """The propagate-header proxy-wasm module as Wasm bytes.

    ``abi`` is the proxy-wasm ABI ("0.2.1" default, or "0.1.0" for Istio/ASM 1.7–1.8 era proxies);
    ``root_id`` is the root id the plugin must be configured with: a plugin configured with another
    non-empty root id (host property ``plugin_root_id``) is refused; an empty or absent one is
    accepted. ``root_id=""`` builds a module that accepts any root id.
    """
    from meshfilter.wasm.codegen import assemble

    return assemble(render_propagate_header(abi=abi, root_id=root_id))
