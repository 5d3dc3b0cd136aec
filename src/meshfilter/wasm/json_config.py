"""A never-trapping JSON configuration parser for a filter's ``Config`` fields, generated as WAT.

The parser is derived from propagate-header's (``meshfilter.wasm.propagate``): strict RFC 8259 JSON
(UTF-8 validated, escapes decoded in place, nesting at most 64, every value type parsed), bounds
checked against the buffer the host gave, no recursion. Where that one knows two keys, this one is
driven by two small tables (each field's kind and name), so one parser serves any ``Config``:
``str`` / ``HeaderName`` / ``HeaderValue``, ``int`` (a JSON integer within ±2**31), ``bool``,
``list[str]``; required or with a default.

:func:`add_config` adds ``proxy_on_configure`` to a :class:`~meshfilter.wasm.codegen.ModuleBuilder`.
It checks the configuration exactly like :func:`meshfilter.sdk.config.parse_config` (same problems,
same order, same texts) and, on a problem, logs ``<log name>: <text>`` at level error and returns
false, so the host refuses the plugin; the previous configuration (if any) stays in force. On
success the values are kept at the bottom of the heap (moved down over the previous configuration,
so re-configuring does not grow memory) and read through :meth:`ConfigLayout.load`.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshfilter.sdk.config import problem_texts
from meshfilter.sdk.ir import CONFIG_INT_MAX, LIST_MAX, OUT_OF_MEMORY, ConfigField
from meshfilter.sdk.wire import TCHARS
from meshfilter.wasm.codegen import LogLevel, ModuleBuilder

__all__ = ["ConfigLayout", "add_config", "add_same", "add_token_check", "pack"]

# field kind codes in the kinds table
_KIND_CODE = {"str": 1, "header_name": 1, "header_value": 1, "int": 2, "bool": 3, "list": 4}
# value type codes passed to $cfg_val
_T_STR, _T_INT, _T_NUM, _T_TRUE, _T_FALSE, _T_NULL, _T_OBJ, _T_ARR, _T_BIG = range(1, 10)
_ESCAPES = b'""\\\\//b\x08f\x0cn\nr\rt\t'

_JSON_WAT = r"""
(global $p (mut i32) (i32.const 0))
(global $e (mut i32) (i32.const 0))
(global $s (mut i32) (i32.const 0))
(global $cfg_oom (mut i32) (i32.const 0))
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
(func $put (param $d i32) (param $u i32) (result i32) (local $n i32)
  (if (i32.lt_u (local.get $u) (i32.const 0x80))
    (then (i32.store8 (local.get $d) (local.get $u)) (return (i32.add (local.get $d) (i32.const 1)))))
  (local.set $n (i32.add (i32.add (i32.const 1) (i32.ge_u (local.get $u) (i32.const 0x800)))
                         (i32.ge_u (local.get $u) (i32.const 0x10000))))
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
;; the string at $p (its opening quote), decoded in place from $s: its length, or -1
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
(func $digits (result i32) (local $n i32)
  (loop $l
    (if (i32.lt_u (i32.sub (call $peek) (i32.const 48)) (i32.const 10))
      (then (global.set $p (i32.add (global.get $p) (i32.const 1)))
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (br $l))))
  (local.get $n))
;; a number at $p: 0 malformed, 1 an integer, 2 one with a fraction or an exponent
(func $num (result i32) (local $c i32) (local $r i32)
  (local.set $r (i32.const 1))
  (if (i32.eq (call $peek) (i32.const 45)) (then (drop (call $next))))
  (if (i32.eq (call $peek) (i32.const 48))
    (then (drop (call $next)))
    (else (if (i32.eqz (call $digits)) (then (return (i32.const 0))))))
  (if (i32.eq (call $peek) (i32.const 46))
    (then (drop (call $next)) (local.set $r (i32.const 2))
          (if (i32.eqz (call $digits)) (then (return (i32.const 0))))))
  (if (i32.eq (i32.or (call $peek) (i32.const 32)) (i32.const 101))
    (then
      (drop (call $next))
      (local.set $r (i32.const 2))
      (local.set $c (call $peek))
      (if (i32.or (i32.eq (local.get $c) (i32.const 43)) (i32.eq (local.get $c) (i32.const 45)))
        (then (drop (call $next))))
      (if (i32.eqz (call $digits)) (then (return (i32.const 0))))))
  (local.get $r))
(func $lit (param $a i32) (param $n i32) (result i32)
  (loop $l
    (if (i32.ne (call $next) (i32.load8_u (local.get $a))) (then (return (i32.const 0))))
    (local.set $a (i32.add (local.get $a) (i32.const 1)))
    (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
  (i32.const 1))
;; an object member's key and colon: the 1-based field of a top-level key, 0 (another key or
;; not at the top level) or -1 (malformed)
(func $colon (param $k i32) (result i32)
  (if (i32.ne (call $ws) (i32.const 58)) (then (return (i32.const -1))))
  (global.set $p (i32.add (global.get $p) (i32.const 1)))
  (local.get $k))
(func $member (param $top i32) (result i32) (local $n i32) (local $k i32) (local $t i32)
  (if (i32.ne (call $ws) (i32.const 34)) (then (return (i32.const -1))))
  (local.set $n (call $str))
  (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const -1))))
  (if (local.get $top)
    (then
      ;; the names table: per field (offset u16, length u16)
      (local.set $t (i32.const NAMES))
      (block $none
        (loop $f
          (br_if $none (i32.ge_u (local.get $t) (i32.const NAMES_END)))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (if (i32.eq (i32.load16_u offset=2 (local.get $t)) (local.get $n))
            (then (if (call $same (global.get $s) (i32.load16_u (local.get $t)) (local.get $n))
              (then (return (call $colon (local.get $k)))))))
          (local.set $t (i32.add (local.get $t) (i32.const 4)))
          (br $f)))))
  (call $colon (i32.const 0)))
"""

# the document walk: values go to $cfg_val (field k > 0 at the top level; -k for an element of
# list field k); returns 0 (valid JSON object), 1 (invalid JSON), 2 (not an object), -1 (out of memory)
_PARSE_WAT = r"""
(func $cfg_parse (result i32)
  (local $c i32) (local $depth i32) (local $stack i64) (local $key i32) (local $k i32) (local $n i32)
  (local $top i32) (local $lk i32) (local $q i32)
  (block $bad
    (block $done
      (local.set $top (call $ws))
      (loop $value
        (local.set $c (call $ws))
        (local.set $k (local.get $key))
        (local.set $key (i32.const 0))
        @LIST_ELEMENT
        (block $after
          (if (i32.eq (local.get $c) (i32.const 34))
            (then
              (local.set $n (call $str))
              (br_if $bad (i32.lt_s (local.get $n) (i32.const 0)))
              (call $cfg_val (local.get $k) (i32.const T_STR)
                (i64.or (i64.shl (i64.extend_i32_u (local.get $n)) (i64.const 32)) (i64.extend_i32_u (global.get $s))))
              (br $after)))
          (if (i32.eq (i32.or (local.get $c) (i32.const 32)) (i32.const 123))
            (then
              (br_if $bad (i32.ge_u (local.get $depth) (i32.const 64)))
              @OPEN
              (local.set $depth (i32.add (local.get $depth) (i32.const 1)))
              (local.set $stack (i64.or (i64.shl (local.get $stack) (i64.const 1))
                                        (i64.extend_i32_u (i32.eq (local.get $c) (i32.const 123)))))
              (global.set $p (i32.add (global.get $p) (i32.const 1)))
              (if (i32.eq (call $ws) (i32.add (local.get $c) (i32.const 2)))
                (then
                  (global.set $p (i32.add (global.get $p) (i32.const 1)))
                  (local.set $depth (i32.sub (local.get $depth) (i32.const 1)))
                  (local.set $stack (i64.shr_u (local.get $stack) (i64.const 1)))
                  @LIST_END
                  (br $after)))
              (if (i32.eq (local.get $c) (i32.const 123))
                (then
                  (local.set $key (call $member (i32.eq (local.get $depth) (i32.const 1))))
                  (br_if $bad (i32.lt_s (local.get $key) (i32.const 0)))))
              (br $value)))
          (if (i32.eq (local.get $c) (i32.const 116))
            (then (br_if $bad (i32.eqz (call $lit (i32.const LIT_TRUE) (i32.const 4))))
                  (call $cfg_val (local.get $k) (i32.const T_TRUE) (i64.const 1)) (br $after)))
          (if (i32.eq (local.get $c) (i32.const 102))
            (then (br_if $bad (i32.eqz (call $lit (i32.const LIT_FALSE) (i32.const 5))))
                  (call $cfg_val (local.get $k) (i32.const T_FALSE) (i64.const 0)) (br $after)))
          (if (i32.eq (local.get $c) (i32.const 110))
            (then (br_if $bad (i32.eqz (call $lit (i32.const LIT_NULL) (i32.const 4))))
                  (call $cfg_val (local.get $k) (i32.const T_NULL) (i64.const 0)) (br $after)))
          (local.set $q (global.get $p))
          (local.set $n (call $num))
          (br_if $bad (i32.eqz (local.get $n)))
          @NUMBER)
        @OOM
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
          (br_if $bad (i32.ne (local.get $c)
            (i32.add (i32.const 93) (i32.shl (i32.wrap_i64 (i64.and (local.get $stack) (i64.const 1))) (i32.const 5)))))
          (global.set $p (i32.add (global.get $p) (i32.const 1)))
          (local.set $depth (i32.sub (local.get $depth) (i32.const 1)))
          (local.set $stack (i64.shr_u (local.get $stack) (i64.const 1)))
          @LIST_END
          (br $close))))
    (br_if $bad (i32.ne (global.get $p) (global.get $e)))
    (return (i32.shl (i32.ne (local.get $top) (i32.const 123)) (i32.const 1))))
  (i32.const 1))
"""

# a value of field k: kind-driven (the kinds table), states 0 absent, 1 present, 2 wrong type, 3 out of range.
# Generated with branches for the kinds the Config has only.
_LIST_ELEMENT_WAT = r"""
  (if (i32.lt_s (local.get $k) (i32.const 0))
    (then
      (local.set $k (i32.sub (i32.const 0) (local.get $k)))
      (if (i32.ne (local.get $t) (i32.const T_STR))
        (then (i32.store8 offset=STATES (local.get $k) (i32.const 2)) (return)))
      ;; append to the list's table (allocations during the parse are contiguous)
      (local.set $a (i32.wrap_i64 (i64.load offset=STAGE (i32.shl (local.get $k) (i32.const 3)))))
      (if (i32.ne (call $alloc (i32.const 8))
                  (i32.add (i32.add (local.get $a) (i32.const 8)) (i32.shl (i32.load (local.get $a)) (i32.const 3))))
        (then (global.set $cfg_oom (i32.const 1)) (return)))
      (i64.store offset=8 (i32.add (local.get $a) (i32.shl (i32.load (local.get $a)) (i32.const 3))) (local.get $v))
      (i32.store (local.get $a) (i32.add (i32.load (local.get $a)) (i32.const 1)))
      (return)))"""
_KIND_WAT = {
    1: """(if (i32.eq (local.get $t) (i32.const T_STR)) (then (local.set $st (i32.const 1))))""",
    2: """(if (i32.eq (local.get $t) (i32.const T_INT)) (then (local.set $st (i32.const 1))))
          (if (i32.eq (local.get $t) (i32.const T_BIG)) (then (local.set $st (i32.const 3))))""",
    3: """(if (i32.or (i32.eq (local.get $t) (i32.const T_TRUE)) (i32.eq (local.get $t) (i32.const T_FALSE)))
            (then (local.set $st (i32.const 1))))""",
    4: """(if (i32.eq (local.get $t) (i32.const T_ARR))
            (then
              (local.set $st (i32.const 1))
              (local.set $a (call $alloc (i32.const 8)))
              (if (i32.eqz (local.get $a)) (then (global.set $cfg_oom (i32.const 1)) (return)))
              (i64.store (local.get $a) (i64.const 0))
              (local.set $v (i64.extend_i32_u (local.get $a)))))""",
}


def _value_wat(kinds: set[int]) -> str:
    if len(kinds) == 1:
        (only,) = kinds
        branches = "  " + _KIND_WAT[only]
    else:
        branches = "\n".join(f"  (if (i32.eq (local.get $kind) (i32.const {k}))\n    (then {_KIND_WAT[k]}))"
                             for k in sorted(kinds))
        branches = "  (local.set $kind (i32.load8_u offset=KINDS (local.get $k)))\n" + branches
    return f"""
(func $cfg_val (param $k i32) (param $t i32) (param $v i64) (local $st i32) (local $kind i32) (local $a i32)
  (if (i32.{'eqz' if 4 in kinds else 'le_s'} (local.get $k){'' if 4 in kinds else ' (i32.const 0)'}) (then (return)))
{_LIST_ELEMENT_WAT if 4 in kinds else ''}
  (local.set $st (i32.const 2))
{branches}
  (i32.store8 offset=STATES (local.get $k) (local.get $st))
  (i64.store offset=STAGE (i32.shl (local.get $k) (i32.const 3)) (local.get $v)))
"""


# the parts of $cfg_parse that read list fields (left out when the Config has none)
_LIST_PARTS = {
    "@LIST_ELEMENT": """(if (i32.and (i32.ne (local.get $lk) (i32.const 0)) (i32.eq (local.get $depth) (i32.const 2)))
          (then (local.set $k (i32.sub (i32.const 0) (local.get $lk)))))""",
    "@OPEN": """(if (i32.eq (local.get $c) (i32.const 91))
                (then
                  (if (i32.gt_s (local.get $k) (i32.const 0))
                    (then (if (i32.eq (i32.load8_u offset=KINDS (local.get $k)) (i32.const 4))
                      (then (local.set $lk (local.get $k))))))
                  (call $cfg_val (local.get $k) (i32.const T_ARR) (i64.const 0)))
                (else (call $cfg_val (local.get $k) (i32.const T_OBJ) (i64.const 0))))
              (if (global.get $cfg_oom) (then (return (i32.const -1))))""",
    "@LIST_END": "(if (i32.le_u (local.get $depth) (i32.const 1)) (then (local.set $lk (i32.const 0))))",
    "@OOM": "(if (global.get $cfg_oom) (then (return (i32.const -1))))",
}
_NO_LIST_PARTS = {"@OPEN": "(call $cfg_val (local.get $k) (i32.const T_OBJ) (i64.const 0))"}
_NUMBER = {True: """(if (i32.eq (local.get $n) (i32.const 1))
            (then (call $cfg_int (local.get $k) (local.get $q)))
            (else (call $cfg_val (local.get $k) (i32.const T_NUM) (i64.const 0))))""",
           False: "(call $cfg_val (local.get $k) (i32.const T_NUM) (i64.const 0))"}

_INT_WAT = r"""
;; the JSON integer at [$q, $p): at most 10 digits and within the int range, else out of range
(func $cfg_int (param $k i32) (param $q i32) (local $v i64) (local $neg i32)
  (local.set $neg (i32.eq (i32.load8_u (local.get $q)) (i32.const 45)))
  (local.set $q (i32.add (local.get $q) (local.get $neg)))
  (if (i32.gt_u (i32.sub (global.get $p) (local.get $q)) (i32.const 10))
    (then (call $cfg_val (local.get $k) (i32.const T_BIG) (i64.const 0)) (return)))
  (block $end
    (loop $l
      (br_if $end (i32.ge_u (local.get $q) (global.get $p)))
      (local.set $v (i64.add (i64.mul (local.get $v) (i64.const 10))
                             (i64.extend_i32_u (i32.sub (i32.load8_u (local.get $q)) (i32.const 48)))))
      (local.set $q (i32.add (local.get $q) (i32.const 1)))
      (br $l)))
  (if (local.get $neg) (then (local.set $v (i64.sub (i64.const 0) (local.get $v)))))
  (if (i32.or (i64.gt_s (local.get $v) (i64.const INT_MAX)) (i64.lt_s (local.get $v) (i64.const INT_MIN)))
    (then (call $cfg_val (local.get $k) (i32.const T_BIG) (i64.const 0)) (return)))
  (call $cfg_val (local.get $k) (i32.const T_INT) (local.get $v)))
"""

_SAME_WAT = r"""
;; $n bytes at $a equal $n bytes at $b
(func $same (param $a i32) (param $b i32) (param $n i32) (result i32)
  (block $no
    (loop $l
      (if (i32.eqz (local.get $n)) (then (return (i32.const 1))))
      (br_if $no (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))))
      (local.set $a (i32.add (local.get $a) (i32.const 1)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
  (i32.const 0))
"""

_TOKEN_WAT = r"""
;; a valid HTTP header name (RFC 9110 token): non-empty, every byte in the tchar bitmap
(func $tok (param $s i64) (result i32) (local $p i32) (local $e i32) (local $c i32)
  (local.set $p (i32.wrap_i64 (local.get $s)))
  (local.set $e (i32.add (local.get $p) (i32.wrap_i64 (i64.shr_u (local.get $s) (i64.const 32)))))
  (if (i32.eq (local.get $p) (local.get $e)) (then (return (i32.const 0))))
  (loop $l
    (local.set $c (i32.load8_u (local.get $p)))
    (if (i32.or (i32.ge_u (local.get $c) (i32.const 128))
                (i32.eqz (i32.and (i32.load8_u offset=TCHARS (i32.shr_u (local.get $c) (i32.const 3)))
                                  (i32.shl (i32.const 1) (i32.and (local.get $c) (i32.const 7))))))
      (then (return (i32.const 0))))
    (br_if $l (i32.lt_u (local.tee $p (i32.add (local.get $p) (i32.const 1))) (local.get $e))))
  (i32.const 1))
;; no CR, LF or NUL
(func $clean (param $s i64) (result i32) (local $p i32) (local $e i32) (local $c i32)
  (local.set $p (i32.wrap_i64 (local.get $s)))
  (local.set $e (i32.add (local.get $p) (i32.wrap_i64 (i64.shr_u (local.get $s) (i64.const 32)))))
  (block $ok
    (loop $l
      (br_if $ok (i32.ge_u (local.get $p) (local.get $e)))
      (local.set $c (i32.load8_u (local.get $p)))
      (if (i32.or (i32.eqz (local.get $c))
                  (i32.or (i32.eq (local.get $c) (i32.const 10)) (i32.eq (local.get $c) (i32.const 13))))
        (then (return (i32.const 0))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br $l)))
  (i32.const 1))
"""


def _tchar_bitmap() -> bytes:
    bits = bytearray(16)
    for b in TCHARS:
        bits[b >> 3] |= 1 << (b & 7)
    return bytes(bits)


def _has(mb: ModuleBuilder, name: str) -> bool:
    return any(f"(func {name} " in f for f in mb.functions)


def add_token_check(mb: ModuleBuilder) -> None:
    """Add ``$tok`` (a valid header name) and ``$clean`` (no CR, LF or NUL) over packed strings, once."""
    if not _has(mb, "$tok"):
        bitmap = mb.data(_tchar_bitmap())
        mb.func(_TOKEN_WAT.replace("TCHARS", str(bitmap.offset)))


def add_same(mb: ModuleBuilder) -> None:
    """Add ``$same(a, b, n)``: n bytes at a equal n bytes at b. Once."""
    if not _has(mb, "$same"):
        mb.func(_SAME_WAT)


def pack(offset: int, length: int) -> int:
    """A string as one i64: length in the high 32 bits, address in the low 32."""
    return (length << 32) | offset


@dataclass(frozen=True)
class ConfigLayout:
    """Where the configured values live: one i64 slot per field (1-based) from ``base``."""

    fields: tuple[ConfigField, ...]
    base: int

    def slot(self, name: str) -> int:
        i = next(i for i, f in enumerate(self.fields) if f.name == name)
        return self.base + 8 * (i + 1)

    def load(self, name: str) -> str:
        """A WAT expression reading field ``name``: i64 for str (packed) and int, i32 for bool and list."""
        field = next(f for f in self.fields if f.name == name)
        raw = f"(i64.load (i32.const {self.slot(name)}))"
        return raw if field.kind not in ("bool", "list") else f"(i32.wrap_i64 {raw})"


def _default(mb: ModuleBuilder, f: ConfigField) -> int:
    if f.kind == "list":
        values = f.default if isinstance(f.default, tuple) else ()
        segs = [mb.data(v.encode("ascii", "surrogateescape")) for v in values]
        table = len(segs).to_bytes(4, "little") + bytes(4) + b"".join(
            pack(s.offset, s.length).to_bytes(8, "little") for s in segs)
        return mb.data(table, align=8).offset
    if f.kind in ("int", "bool"):
        assert isinstance(f.default, (int, type(None)))
        return int(f.default or 0)
    if f.default is None:
        return 0
    assert isinstance(f.default, str)
    seg = mb.data(f.default.encode("ascii", "surrogateescape"))
    return pack(seg.offset, seg.length) if seg.length else 0


def add_config(mb: ModuleBuilder, fields: tuple[ConfigField, ...], *, log_name: str) -> ConfigLayout:
    """Add the parser and ``proxy_on_configure``; return where the values live."""
    n = len(fields)
    committed = mb.reserve(8 * (n + 1), align=8)
    stage = mb.reserve(8 * (n + 1), align=8)
    states = mb.reserve(n + 1, align=1)
    kinds = mb.data(bytes([0] + [_KIND_CODE[f.kind] for f in fields]))
    names = [mb.data(f.name.encode()) for f in fields]
    names_table = mb.data(b"".join(s.offset.to_bytes(2, "little") + s.length.to_bytes(2, "little") for s in names),
                          align=4)
    esc = mb.data(_ESCAPES)
    lit_true, lit_false, lit_null = mb.data("true"), mb.data("false"), mb.data("null")
    add_same(mb)
    if any(f.kind in ("header_name", "header_value") for f in fields):
        add_token_check(mb)
    codes = {_KIND_CODE[f.kind] for f in fields} or {1}
    wat = _JSON_WAT + _PARSE_WAT + _value_wat(codes) + (_INT_WAT if 2 in codes else "")
    lists = 4 in codes  # the list bookkeeping only when the Config has a list field
    for mark, text in _LIST_PARTS.items():
        wat = wat.replace(mark, text if lists else _NO_LIST_PARTS.get(mark, ""))
    wat = wat.replace("@NUMBER", _NUMBER[2 in codes])  # ints parsed only for an int field
    subs = {"ESC_START": esc.offset, "ESC_END": esc.offset + esc.length, "NAMES_END": names_table.offset +
            names_table.length, "NAMES": names_table.offset, "LIT_TRUE": lit_true.offset,
            "LIT_FALSE": lit_false.offset, "LIT_NULL": lit_null.offset, "KINDS": kinds.offset,
            "STATES": states.offset, "STAGE": stage.offset, "INT_MAX": CONFIG_INT_MAX, "INT_MIN": -CONFIG_INT_MAX - 1,
            "T_STR": _T_STR, "T_INT": _T_INT, "T_NUM": _T_NUM, "T_TRUE": _T_TRUE, "T_FALSE": _T_FALSE,
            "T_NULL": _T_NULL, "T_OBJ": _T_OBJ, "T_ARR": _T_ARR, "T_BIG": _T_BIG}
    for key in sorted(subs, key=len, reverse=True):
        wat = wat.replace(key, str(subs[key]))
    mb.func(wat)

    # the problem texts, indexed by the 1-based verdict of $cfg_check
    problems = problem_texts(fields)
    index = {(phase, name, text): i + 1 for i, (phase, name, text) in enumerate(problems)}
    texts = [mb.data(text) for _, _, text in problems] + [mb.data(OUT_OF_MEMORY)]
    table = mb.data(b"".join(t.offset.to_bytes(2, "little") + t.length.to_bytes(2, "little") for t in texts),
                    align=4)
    prefix = mb.data(f"{log_name}: ")
    mb.func(f"""
(func $cfg_problem (param $i i32) (local $t i32) (local $m i32) (local $n i32)
  (local.set $t (i32.add (i32.const {table.offset}) (i32.shl (i32.sub (local.get $i) (i32.const 1)) (i32.const 2))))
  (local.set $n (i32.load16_u offset=2 (local.get $t)))
  (local.set $m (call $alloc (i32.add (local.get $n) (i32.const {prefix.length}))))
  (if (i32.eqz (local.get $m))
    (then {mb.log_ptr(LogLevel.ERROR, "(i32.load16_u (local.get $t))", "(local.get $n)")} (return)))
  (memory.copy (local.get $m) {prefix.ptr} {prefix.len})
  (memory.copy (i32.add (local.get $m) (i32.const {prefix.length})) (i32.load16_u (local.get $t)) (local.get $n))
  {mb.log_ptr(LogLevel.ERROR, "(local.get $m)", f"(i32.add (local.get $n) (i32.const {prefix.length}))")})""")

    def slot(i: int) -> str:
        return f"(i64.load (i32.const {stage.offset + 8 * (i + 1)}))"

    def state(i: int) -> str:
        return f"(i32.load8_u (i32.const {states.offset + i + 1}))"

    checks: list[str] = []
    for i, f in enumerate(fields):
        if f.required:
            code = index[("missing", f.name, f"missing key {f.name}")]
            checks.append(f"(if (i32.eqz {state(i)}) (then (return (i32.const {code}))))")
    for i, f in enumerate(fields):
        code = next(v for (ph, name, _), v in index.items() if ph == "type" and name == f.name)
        checks.append(f"(if (i32.eq {state(i)} (i32.const 2)) (then (return (i32.const {code}))))")
    content = [(ph, name, t) for (ph, name, t) in problems if ph == "content"]
    for i, f in enumerate(fields):
        mine = [index[p] for p in content if p[1] == f.name]
        present = f"(i32.eq {state(i)} (i32.const 1))"
        if f.kind == "header_name":
            checks.append(f"""(if {present}
    (then
      (if (i32.eqz (i32.wrap_i64 (i64.shr_u {slot(i)} (i64.const 32)))) (then (return (i32.const {mine[0]}))))
      (if (i32.eqz (call $tok {slot(i)})) (then (return (i32.const {mine[1]}))))
      (call $lower_in_place {slot(i)})))""")
        elif f.kind == "header_value":
            checks.append(f"(if {present} (then (if (i32.eqz (call $clean {slot(i)})) "
                          f"(then (return (i32.const {mine[0]}))))))")
        elif f.kind == "int":
            checks.append(f"(if (i32.eq {state(i)} (i32.const 3)) (then (return (i32.const {mine[0]}))))")
        elif f.kind == "list":
            checks.append(f"(if {present} (then (if (i32.gt_u (i32.load (i32.wrap_i64 {slot(i)})) "
                          f"(i32.const {LIST_MAX})) (then (return (i32.const {mine[0]}))))))")
    if any(f.kind == "header_name" for f in fields):
        mb.func("""
(func $lower_in_place (param $s i64) (local $p i32) (local $e i32) (local $c i32)
  (local.set $p (i32.wrap_i64 (local.get $s)))
  (local.set $e (i32.add (local.get $p) (i32.wrap_i64 (i64.shr_u (local.get $s) (i64.const 32)))))
  (block $end
    (loop $l
      (br_if $end (i32.ge_u (local.get $p) (local.get $e)))
      (local.set $c (i32.load8_u (local.get $p)))
      (if (i32.lt_u (i32.sub (local.get $c) (i32.const 65)) (i32.const 26))
        (then (i32.store8 (local.get $p) (i32.or (local.get $c) (i32.const 32)))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br $l))))""")
    checks_text = "\n  ".join(checks)
    mb.func(f"""
;; the parsed document's problems, in the order meshfilter.sdk.config checks them (0: none)
(func $cfg_check (result i32)
  {checks_text}
  (i32.const 0))""")

    # commit: defaults for absent fields; the new values moved down to the heap's start
    commit: list[str] = []
    for i, f in enumerate(fields):
        addr = stage.offset + 8 * (i + 1)
        moves = ""
        if f.kind in ("str", "header_name", "header_value"):
            moves = f"(i64.store (i32.const {addr}) (i64.sub {slot(i)} (i64.extend_i32_u (local.get $d))))"
        elif f.kind == "list":
            moves = f"""(local.set $ta (i32.sub (i32.wrap_i64 {slot(i)}) (local.get $d)))
        (i64.store (i32.const {addr}) (i64.extend_i32_u (local.get $ta)))
        (local.set $i (i32.load (local.get $ta)))
        (block $done (loop $l
          (br_if $done (i32.eqz (local.get $i)))
          (local.set $i (i32.sub (local.get $i) (i32.const 1)))
          (local.set $t (i32.add (i32.add (local.get $ta) (i32.const 8)) (i32.shl (local.get $i) (i32.const 3))))
          (i64.store (local.get $t) (i64.sub (i64.load (local.get $t)) (i64.extend_i32_u (local.get $d))))
          (br $l)))"""
        if moves:
            # a present value lies in the new region; an empty string (0) stays where it is
            commit.append(f"""(if (i32.and {state(i)} (i32.ne (i32.wrap_i64 {slot(i)}) (i32.const 0)))
      (then {moves}))""")
        commit.append(f"(if (i32.eqz {state(i)}) (then (i64.store (i32.const {addr}) (i64.const {_default(mb, f)}))))")
    commit_text = "\n    ".join(commit)
    mb.callback("proxy_on_configure", f"""
  {mb.reset_heap()}
  (global.set $cfg_oom (i32.const 0))
  (memory.fill (i32.const {states.offset}) (i32.const 0) (i32.const {n + 1}))
  (drop {mb.read_plugin_configuration("(local.get $b)")})
  (global.set $p (global.get $out_ptr))
  (global.set $e (i32.add (global.get $out_ptr) (global.get $out_len)))
  (if (global.get $out_len)
    (then
      (local.set $r (call $cfg_parse))
      (if (i32.lt_s (local.get $r) (i32.const 0)) (then (local.set $r (i32.const {len(texts)})))))
    (else (local.set $r (i32.const 0))))
  (if (i32.eqz (local.get $r)) (then (local.set $r (call $cfg_check))))
  (if (local.get $r) (then (call $cfg_problem (local.get $r)) {mb.reset_heap()} (return (i32.const 0))))
  ;; the region [heap_base, bump) holds the new values; move it down to the heap's start
  (local.set $d (i32.sub (global.get $heap_base) (global.get $heap_start)))
  (if (local.get $d)
    (then
      (memory.copy (global.get $heap_start) (global.get $heap_base)
                   (i32.sub (global.get $bump) (global.get $heap_base)))
      (global.set $bump (i32.sub (global.get $bump) (local.get $d)))))
  {commit_text}
  (memory.copy (i32.const {committed.offset}) (i32.const {stage.offset}) (i32.const {8 * (n + 1)}))
  {mb.keep_heap()}
  (i32.const 1)""", locals_="(local $r i32) (local $d i32) (local $ta i32) (local $i i32) (local $t i32)")
    return ConfigLayout(fields, committed.offset)
