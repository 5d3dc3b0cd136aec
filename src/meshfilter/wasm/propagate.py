"""The propagate-header proxy-wasm module, generated as WAT and assembled with wasmtime.

On ``proxy_on_configure`` the module parses the plugin configuration with a strict JSON parser
written in WAT (UTF-8 validated, escapes decoded in place, nesting at most 64, every value type
skipped, the last duplicate key wins), checks it exactly like
:func:`meshfilter.filters.propagate.parse_config` and, on a problem, logs
``propagate-header: <PROBLEMS text>`` at level error and returns false so the host refuses the
plugin. Name and value are then moved to the bottom of the heap and kept there (so a refused
re-configuration leaves the previous one in force). The name is passed to the host as configured:
Envoy (and every proxy-wasm host) lower-cases header names itself.

On ``proxy_on_request_headers`` it replaces the header (one value, whatever the request carried),
clears the route cache and continues. Nothing is allocated per request.

Exports: the ABI marker, ``memory``, the allocator, ``proxy_on_configure`` and
``proxy_on_request_headers``: nothing else, because Envoy makes one VM call per exported
callback per request.

The module is kept under 2 KB (see docs/architecture/wasm-codegen.md, "Size"): the log texts are
packed into one string (texts that contain each other, or overlap, share bytes) and each problem
is logged from a 4-byte table entry; the parser is one loop in ``proxy_on_configure`` where every
string byte (raw UTF-8 or escape) is decoded to a code point, checked once and written back by one
encoder.
"""

from __future__ import annotations

import os

from meshfilter.errors import UsageError
from meshfilter.filters import propagate as oracle
from meshfilter.wasm.codegen import DEFAULT_ABI, BufferType, LogLevel, ModuleBuilder

# verdict codes, in the order parse_config checks them (then the root id mismatch, logged the same way)
PROBLEM_ORDER = ("invalid_json", "not_object", "missing_name", "missing_value", "name_not_string",
                 "value_not_string", "empty_name", "bad_name", "bad_value")
ROOT_ID_MISMATCH = "plugin root id does not match the module's root id"
_ROOT_VERDICT = len(PROBLEM_ORDER) + 1

# simple escapes: pairs of (decoded byte, escape letter)
_ESCAPES = b'""\\\\//\x08b\x0cf\nn\rr\tt'


def _tchar_bitmap() -> bytes:
    bits = bytearray(16)
    for b in oracle.TCHARS:
        bits[b >> 3] |= 1 << (b & 7)
    return bytes(bits)


def _type_verdicts() -> bytes:
    """Verdict by (name type * 3 + value type), types 0 absent, 1 string, 2 other: the order of
    parse_config's checks (missing name, missing value, name not a string, value not a string)."""
    out = bytearray()
    for nt in range(3):
        for vt in range(3):
            problem = ("missing_name" if nt == 0 else "missing_value" if vt == 0 else
                       "name_not_string" if nt == 2 else "value_not_string" if vt == 2 else None)
            out.append(PROBLEM_ORDER.index(problem) + 1 if problem else 0)
    return bytes(out)


def pack_strings(strings: list[bytes]) -> bytes:
    """One byte string containing every given string (greedy shortest common superstring: a
    string inside another is dropped, then the pair with the longest overlap is merged first)."""
    items = sorted(set(strings), key=lambda b: (-len(b), b))
    kept: list[bytes] = []
    for b in items:
        if not any(b in k for k in kept):
            kept.append(b)
    while len(kept) > 1:
        best = (0, 0, 1)
        for i, a in enumerate(kept):
            for j, b in enumerate(kept):
                if i != j:
                    n = min(len(a), len(b)) - 1
                    while n > best[0] and not a.endswith(b[:n]):
                        n -= 1
                    if n > best[0]:
                        best = (n, i, j)
        n, i, j = best
        merged = kept[i] + kept[j][n:]
        kept = [k for x, k in enumerate(kept) if x not in (i, j)] + [merged]
    return kept[0] if kept else b""


_JSON_WAT = r"""
(global $p (mut i32) (i32.const 0))
(global $e (mut i32) (i32.const 0))
(global $s (mut i32) (i32.const 0))
(func $peek (result i32)
  (if (result i32) (i32.lt_u (global.get $p) (global.get $e))
    (then (i32.load8_u (global.get $p))) (else (i32.const -1))))
(func $next (result i32) (local $c i32)
  (global.set $p (i32.add (global.get $p) (i32.ge_s (local.tee $c (call $peek)) (i32.const 0))))
  (local.get $c))
;; consume byte $c if it is next; 1 if it was
(func $eat (param $c i32) (result i32)
  (global.set $p (i32.add (global.get $p) (local.tee $c (i32.eq (call $peek) (local.get $c)))))
  (local.get $c))
;; skip space, tab, LF, CR; the next byte (not consumed), -1 at the end
(func $ws (result i32) (local $c i32)
  (loop $l
    (if (i32.or (i32.eq (local.tee $c (call $peek)) (i32.const 32))
                (i32.and (i32.lt_u (local.get $c) (i32.const 14)) (i32.shr_u (i32.const 0x2600) (local.get $c))))
      (then (drop (call $next)) (br $l))))
  (local.get $c))
;; 4 hex digits: their value, or -1
(func $hex4 (result i32) (local $i i32) (local $v i32) (local $c i32)
  (local.set $i (i32.const 4))
  (loop $l
    (if (i32.ge_u (local.tee $c (i32.sub (call $next) (i32.const 48))) (i32.const 10))
      (then
        (if (i32.ge_u (local.tee $c (i32.sub (i32.or (local.get $c) (i32.const 32)) (i32.const 49))) (i32.const 6))
          (then (return (i32.const -1))))
        (local.set $c (i32.add (local.get $c) (i32.const 10)))))
    (local.set $v (i32.or (i32.shl (local.get $v) (i32.const 4)) (local.get $c)))
    (br_if $l (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
  (local.get $v))
;; a string at $p (the opening quote), decoded in place from $s: its length, or -1. Every character
;; (raw UTF-8, simple escape, \u escape or surrogate pair) becomes a code point $u, which must be a
;; Unicode scalar value, and is written back as UTF-8.
(func $str (result i32) (local $d i32) (local $c i32) (local $u i32) (local $n i32) (local $m i32)
  (drop (call $next))
  (global.set $s (local.tee $d (global.get $p)))
  (block $fail
    (loop $l
      (local.set $u (local.tee $c (call $next)))
      (br_if $fail (i32.lt_s (local.get $c) (i32.const 32)))
      (if (i32.eq (local.get $c) (i32.const 34)) (then (return (i32.sub (local.get $d) (global.get $s)))))
      (if (i32.eq (local.get $c) (i32.const 92))
        (then
          (if (i32.eq (local.tee $c (call $next)) (i32.const 117))
            (then
              (if (i32.eq (i32.and (local.tee $u (call $hex4)) (i32.const 0xFC00)) (i32.const 0xD800))
                (then
                  ;; a high surrogate must be followed by an escaped low one
                  (br_if $fail (i32.eqz (call $eat (i32.const 92))))
                  (br_if $fail (i32.eqz (call $eat (i32.const 117))))
                  (br_if $fail (i32.ne (i32.and (local.tee $n (call $hex4)) (i32.const 0xFC00)) (i32.const 0xDC00)))
                  ;; 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                  (local.set $u (i32.add (i32.shl (local.get $u) (i32.const 10))
                                         (i32.sub (local.get $n) (i32.const 0x35FDC00)))))))
            (else
              (local.set $n (i32.const ESC_M2))
              (loop $k
                (br_if $fail (i32.eq (local.tee $n (i32.add (local.get $n) (i32.const 2))) (i32.const ESC_END)))
                (br_if $k (i32.ne (i32.load8_u offset=1 (local.get $n)) (local.get $c))))
              (local.set $u (i32.load8_u (local.get $n))))))
        (else
          (if (i32.ge_u (local.get $c) (i32.const 0x80))
            (then
              ;; UTF-8: lead byte C2..F4, then $m continuation bytes; no overlong form
              (br_if $fail (i32.gt_u (i32.sub (local.get $c) (i32.const 0xC2)) (i32.const 0x32)))
              (local.set $m (local.tee $n (i32.add (i32.add (i32.const 1) (i32.ge_u (local.get $c) (i32.const 0xE0)))
                                                   (i32.ge_u (local.get $c) (i32.const 0xF0)))))
              (local.set $u (i32.and (local.get $c) (i32.shr_u (i32.const 63) (local.get $n))))
              (loop $k
                (br_if $fail (i32.ne (i32.and (local.tee $c (call $next)) (i32.const 0xC0)) (i32.const 0x80)))
                (local.set $u (i32.or (i32.shl (local.get $u) (i32.const 6)) (i32.and (local.get $c) (i32.const 63))))
                (br_if $k (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
              (br_if $fail (i32.lt_u (local.get $u)
                                     (i32.shl (i32.const 1)
                                              (i32.add (i32.mul (local.get $m) (i32.const 5)) (i32.const 1)))))))))
      ;; a Unicode scalar value: at most U+10FFFF, not a surrogate
      (br_if $fail (i32.gt_u (local.get $u) (i32.const 0x10FFFF)))
      (br_if $fail (i32.lt_u (i32.sub (local.get $u) (i32.const 0xD800)) (i32.const 0x800)))
      ;; write $u as UTF-8 at $d. $n: continuation bytes (0..3); the lead byte's prefix (none, C0,
      ;; E0, F0) is byte $n of 0xF0E0C000
      (local.set $n (i32.add (i32.add (i32.gt_u (local.get $u) (i32.const 0x7F))
                                      (i32.gt_u (local.get $u) (i32.const 0x7FF)))
                             (i32.gt_u (local.get $u) (i32.const 0xFFFF))))
      (i32.store8 (local.get $d) (i32.or (i32.shr_u (i32.const 0xF0E0C000) (i32.shl (local.get $n) (i32.const 3)))
                                         (i32.shr_u (local.get $u) (i32.mul (local.get $n) (i32.const 6)))))
      (loop $w
        (if (local.get $n)
          (then
            (i32.store8 (local.tee $d (i32.add (local.get $d) (i32.const 1)))
              (i32.or (i32.const 0x80)
                      (i32.and (i32.shr_u (local.get $u) (i32.mul (local.tee $n (i32.sub (local.get $n) (i32.const 1)))
                                                                  (i32.const 6)))
                               (i32.const 63))))
            (br $w))))
      (local.set $d (i32.add (local.get $d) (i32.const 1)))
      (br $l)))
  (i32.const -1))
;; at least one digit at $p (all of them consumed): 1, else 0
(func $digits (result i32) (local $n i32)
  (loop $l
    (if (i32.lt_u (i32.sub (call $peek) (i32.const 48)) (i32.const 10))
      (then (drop (call $next)) (local.set $n (i32.const 1)) (br $l))))
  (local.get $n))
;; $n bytes at $a equal $m bytes at $b
(func $eq (param $a i32) (param $n i32) (param $b i32) (param $m i32) (result i32)
  (block $no
    (br_if $no (i32.ne (local.get $n) (local.get $m)))
    (loop $l
      (if (local.get $n)
        (then
          (br_if $no (i32.ne (i32.load8_u (i32.add (local.get $a)
                                                   (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
                             (i32.load8_u (i32.add (local.get $b) (local.get $n)))))
          (br $l))))
    (return (i32.const 1)))
  (i32.const 0))
;; copy $n bytes from $a to the heap top; their new address
(func $keep (param $a i32) (param $n i32) (result i32) (local $d i32)
  (memory.copy (local.tee $d (global.get $bump)) (local.get $a) (local.get $n))
  (global.set $bump (i32.add (local.get $d) (local.get $n)))
  (local.get $d))
"""

# Parse [$p, $e) and check it like parse_config; the body of proxy_on_configure after the
# configuration was read. $key: the member being read is head_tag_name (1), head_tag_value (2) or
# another (0); $nt/$vt: their value types (0 absent, 1 string, 2 other); $np/$nl, $vp/$vl: the strings.
_PARSE_WAT = r"""
  (block $bad
    (block $done
      (local.set $top (call $ws))
      (loop $value
        (block $key
          (block $after
            (local.set $c (call $ws))
            (local.set $k (local.get $key))
            (local.set $key (i32.const 0))
            (if (i32.eq (local.get $k) (i32.const 1))
              (then (local.set $nt (i32.add (i32.ne (local.get $c) (i32.const 34)) (i32.const 1)))))
            (if (i32.eq (local.get $k) (i32.const 2))
              (then (local.set $vt (i32.add (i32.ne (local.get $c) (i32.const 34)) (i32.const 1)))))
            (if (i32.eq (local.get $c) (i32.const 34))
              (then
                (br_if $bad (i32.lt_s (local.tee $n (call $str)) (i32.const 0)))
                (if (i32.eq (local.get $k) (i32.const 1))
                  (then (local.set $np (global.get $s)) (local.set $nl (local.get $n))))
                (if (i32.eq (local.get $k) (i32.const 2))
                  (then (local.set $vp (global.get $s)) (local.set $vl (local.get $n))))
                (br $after)))
            (if (i32.eq (i32.or (local.get $c) (i32.const 32)) (i32.const 123))
              (then
                ;; '{' or '[': push (1 = object); an empty one is closed by the loop below
                (br_if $bad (i32.eq (local.get $depth) (i32.const MAX_DEPTH)))
                (i32.store8 offset=STACK (local.get $depth) (i32.eq (local.get $c) (i32.const 123)))
                (local.set $depth (i32.add (local.get $depth) (i32.const 1)))
                (drop (call $next))
                (br_if $after (i32.eq (call $ws) (i32.add (local.get $c) (i32.const 2))))
                (br_if $key (i32.eq (local.get $c) (i32.const 123)))
                (br $value)))
            ;; a run of lower-case letters must be a literal; anything else a number
            (local.set $n (global.get $p))
            (loop $w
              (if (i32.lt_u (i32.sub (call $peek) (i32.const 97)) (i32.const 26)) (then (drop (call $next)) (br $w))))
            (if (i32.ne (local.get $n) (global.get $p))
              (then
                (local.set $c (i32.sub (global.get $p) (local.get $n)))
                (br_if $after (call $eq (local.get $n) (local.get $c) (i32.const LIT_TRUE) (i32.const 4)))
                (br_if $after (call $eq (local.get $n) (local.get $c) (i32.const LIT_FALSE) (i32.const 5)))
                (br_if $after (call $eq (local.get $n) (local.get $c) (i32.const LIT_NULL) (i32.const 4)))
                (br $bad)))
            ;; a number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
            (drop (call $eat (i32.const 45)))
            (if (i32.eqz (call $eat (i32.const 48)))
              (then (br_if $bad (i32.eqz (call $digits)))))
            (if (call $eat (i32.const 46))
              (then (br_if $bad (i32.eqz (call $digits)))))
            (if (i32.eq (i32.or (call $peek) (i32.const 32)) (i32.const 101))
              (then
                (drop (call $next))
                (if (i32.eqz (call $eat (i32.const 43))) (then (drop (call $eat (i32.const 45)))))
                (br_if $bad (i32.eqz (call $digits))))))
          ;; after a value: close containers, or go on after a comma
          (loop $close
            (local.set $c (call $ws))
            (br_if $done (i32.eqz (local.get $depth)))
            (if (call $eat (i32.const 44))
              (then
                (br_if $key (i32.load8_u offset=STACK_M1 (local.get $depth)))
                (br $value)))
            ;; ']' (93) in an array, '}' (125) in an object
            (br_if $bad (i32.ne (local.get $c)
              (i32.add (i32.const 93) (i32.shl (i32.load8_u offset=STACK_M1 (local.get $depth)) (i32.const 5)))))
            (drop (call $next))
            (local.set $depth (i32.sub (local.get $depth) (i32.const 1)))
            (br $close)))
        ;; an object member's name and colon
        (br_if $bad (i32.ne (call $ws) (i32.const 34)))
        (br_if $bad (i32.lt_s (local.tee $n (call $str)) (i32.const 0)))
        (if (i32.eq (local.get $depth) (i32.const 1))
          (then (local.set $key (i32.add (call $eq (global.get $s) (local.get $n) (i32.const NAME_KEY)
                                                   (i32.const NAME_KEY_LEN))
                                         (i32.shl (call $eq (global.get $s) (local.get $n) (i32.const VALUE_KEY)
                                                            (i32.const VALUE_KEY_LEN))
                                                  (i32.const 1))))))
        (br_if $bad (i32.ne (call $ws) (i32.const 58)))
        (drop (call $next))
        (br $value)))
    ;; the whole input must be consumed
    (br_if $bad (i32.ne (global.get $p) (global.get $e)))
    (if (i32.ne (local.get $top) (i32.const 123)) (then (return (call $problem (i32.const 2)))))
    (if (local.tee $n (i32.load8_u offset=TYPE_VERDICTS
                        (i32.add (i32.mul (local.get $nt) (i32.const 3)) (local.get $vt))))
      (then (return (call $problem (local.get $n)))))
    (if (i32.eqz (local.get $nl)) (then (return (call $problem (i32.const 7)))))
    ;; name: RFC 9110 token characters
    (local.set $n (local.get $nl))
    (loop $l
      (local.set $c (i32.load8_u (i32.add (local.get $np) (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
      (if (i32.or (i32.ge_u (local.get $c) (i32.const 128))
                  (i32.eqz (i32.and (i32.load8_u offset=TCHARS (i32.shr_u (local.get $c) (i32.const 3)))
                                    (i32.shl (i32.const 1) (i32.and (local.get $c) (i32.const 7))))))
        (then (return (call $problem (i32.const 8)))))
      (br_if $l (local.get $n)))
    ;; value: no CR, LF or NUL (bits 13, 10, 0 of 0x2401)
    (local.set $n (local.get $vl))
    (block $ok
      (loop $l
        (br_if $ok (i32.eqz (local.get $n)))
        (local.set $c (i32.load8_u (i32.add (local.get $vp) (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
        (br_if $l (i32.eqz (i32.and (i32.lt_u (local.get $c) (i32.const 14))
                                    (i32.shr_u (i32.const 0x2401) (local.get $c)))))
        (return (call $problem (i32.const 9)))))
    ;; keep name and value at the heap's start: the lower-addressed one first (no overlap)
    (global.set $bump (i32.const HEAP_START))
    (if (i32.lt_u (local.get $np) (local.get $vp))
      (then (global.set $hn (call $keep (local.get $np) (local.get $nl)))
            (global.set $hv (call $keep (local.get $vp) (local.get $vl))))
      (else (global.set $hv (call $keep (local.get $vp) (local.get $vl)))
            (global.set $hn (call $keep (local.get $np) (local.get $nl)))))
    (global.set $hnl (local.get $nl))
    (global.set $hvl (local.get $vl))
    (global.set $heap_base (global.get $bump))
    (return (i32.const 1)))
  (call $problem (i32.const 1))"""


def _halves(text: bytes, texts: list[bytes], root: bytes) -> tuple[bytes, bytes]:
    """A log text as two parts that other texts share: split off a configuration key or the root id
    at either end, else after the longest start it has in common with another text."""
    for part in (oracle.NAME_KEY.encode(), oracle.VALUE_KEY.encode(), root):
        if part and text.startswith(part):
            return part, text[len(part):]
        if part and text.endswith(part):
            return text[:-len(part)], part
    common = max((len(os.path.commonprefix([text, t])) for t in texts if t != text), default=0)
    return text[:common or 1], text[common or 1:]


def _validate_root_id(root_id: str) -> bytes:
    raw = root_id.encode("utf-8", "surrogatepass")
    if len(raw) > 256 or b"\0" in raw:
        raise UsageError("root id must be at most 256 bytes without NUL", where="root_id",
                         hint=f"the usual root id is {oracle.ROOT_ID}")
    return raw


def render_propagate_header(*, abi: str = DEFAULT_ABI, root_id: str = oracle.ROOT_ID,
                            clear_route_cache: bool = True) -> str:
    """The WAT text of the propagate-header module (see the module docstring).

    ``clear_route_cache=False`` leaves out the explicit route-cache clear after the replace
    (bench/bench_wasm.py measures what it costs; Envoy 1.40 clears the cache itself on a header change).
    """
    root = _validate_root_id(root_id)
    mb = ModuleBuilder(abi)
    slots = mb.reserve(8)  # host call results (pointer, length); first, so no data bytes are spent on it
    esc = mb.data(_ESCAPES)
    tchars = mb.data(_tchar_bitmap())
    verdicts = mb.data(_type_verdicts())
    prefix = oracle.LOG_PREFIX.encode()
    texts = [oracle.PROBLEMS[p].encode() for p in PROBLEM_ORDER]
    if root:
        texts.append(f"{ROOT_ID_MISMATCH} ".encode() + root)
    halves = [_halves(t, texts, root) for t in texts]
    mb.data(pack_strings([*(h for pair in halves for h in pair), oracle.NAME_KEY.encode(), oracle.VALUE_KEY.encode(),
                          b"clear_route_cache", b"plugin_root_id", b"true", b"false", b"null"]))
    # problem i (1-based): two spans (offset u16, length u16) at table + 8 * (i - 1)
    table = mb.data(b"".join(seg.offset.to_bytes(2, "little") + seg.length.to_bytes(2, "little")
                             for pair in halves for seg in map(mb.data, pair)))
    # the log line is built in place: the prefix, then room for the longest text (zeroes: no data bytes)
    line = mb.data(prefix)
    mb.reserve(max(len(t) for t in texts))
    stack = mb.reserve(oracle.MAX_DEPTH, align=1)  # one byte per open container: 1 object, 0 array
    name_key, value_key = mb.data(oracle.NAME_KEY), mb.data(oracle.VALUE_KEY)
    for g in ("hn", "hnl", "hv", "hvl"):  # the configured header, kept at the bottom of the heap
        mb.global_(g)
    json_wat = _JSON_WAT
    for sym, value in (("ESC_M2", esc.offset - 2), ("ESC_END", esc.offset + esc.length)):
        json_wat = json_wat.replace(sym, str(value))
    mb.func(json_wat)
    mb.func(f"""
;; log problem $i ("propagate-header: <text>") at level error; 0, the value proxy_on_configure returns
(func $problem (param $i i32) (result i32) (local $n i32)
  (memory.copy (i32.const {line.offset + line.length})
               (i32.load16_u offset={table.offset - 8} (local.tee $i (i32.shl (local.get $i) (i32.const 3))))
               (local.tee $n (i32.load16_u offset={table.offset - 6} (local.get $i))))
  (memory.copy (i32.add (local.get $n) (i32.const {line.offset + line.length}))
               (i32.load16_u offset={table.offset - 4} (local.get $i))
               (local.tee $i (i32.load16_u offset={table.offset - 2} (local.get $i))))
  {mb.log_ptr(LogLevel.ERROR, line.ptr, f"(i32.add (i32.add (local.get $n) (local.get $i)) {line.len})")}
  (i32.const 0))""")

    status_ok = f"(i32.const {slots.offset}) (i32.const {slots.offset + 4})"
    root_check = ""
    if root:
        path = mb.data("plugin_root_id")
        want = mb.data(root)
        # a host without the property, or an empty root id (the VM's default root context), is accepted
        root_check = f"""
  (if (i32.eqz (call {mb.use("proxy_get_property")} {path.ptr} {path.len} {status_ok}))
    (then
      (if (i32.load (i32.const {slots.offset + 4}))
        (then
          (if (i32.eqz (call $eq (i32.load (i32.const {slots.offset})) (i32.load (i32.const {slots.offset + 4}))
                                 {want.ptr} {want.len}))
            (then (return (call $problem (i32.const {_ROOT_VERDICT})))))))))
  {mb.reset_heap()}"""
    if abi == "0.1.0":
        read = f"(call {mb.use('proxy_get_configuration')} {status_ok})"
    else:
        read = (f"(call {mb.use('proxy_get_buffer_bytes')} (i32.const {BufferType.PLUGIN_CONFIGURATION}) "
                f"(i32.const 0) (local.get $b) {status_ok})")
    parse = _PARSE_WAT
    for sym, value in (("LIT_TRUE", mb.data("true").offset), ("LIT_FALSE", mb.data("false").offset),
                       ("LIT_NULL", mb.data("null").offset),
                       ("NAME_KEY_LEN", name_key.length), ("NAME_KEY", name_key.offset),
                       ("VALUE_KEY_LEN", value_key.length), ("VALUE_KEY", value_key.offset),
                       ("TYPE_VERDICTS", verdicts.offset), ("TCHARS", tchars.offset),
                       ("HEAP_START", mb.heap_start), ("STACK_M1", stack.offset - 1),
                       ("STACK", stack.offset), ("MAX_DEPTH", oracle.MAX_DEPTH)):
        parse = parse.replace(sym, str(value))
    # proxy_on_configure(root_context_id $a, configuration_size $b); the configuration is [$p, $e)
    # (empty when the host has none)
    mb.callback("proxy_on_configure", f"""
  {mb.reset_heap()}{root_check}
  ;; a host without a configuration writes nothing: the length slot is zeroed first
  (i32.store (i32.const {slots.offset + 4}) (i32.const 0))
  (drop {read})
  (global.set $p (i32.load (i32.const {slots.offset})))
  (global.set $e (i32.add (global.get $p) (i32.load (i32.const {slots.offset + 4}))))
{parse}""", locals_="(local $c i32) (local $depth i32) (local $key i32) (local $k i32) "
                    "(local $n i32) (local $top i32) (local $nt i32) (local $vt i32) (local $np i32) "
                    "(local $nl i32) (local $vp i32) (local $vl i32)")

    # proxy_on_request_headers(context_id, num_headers[, end_of_stream])
    clear = mb.clear_route_cache() if clear_route_cache else ""
    mb.callback("proxy_on_request_headers", f"""
  (if (global.get $hnl)
    (then
      {mb.replace_header("(global.get $hn)", "(global.get $hnl)", "(global.get $hv)", "(global.get $hvl)")}
      {clear}))
  (i32.const 0)""")
    return mb.render()


def build_propagate_header(*, abi: str = DEFAULT_ABI, root_id: str = oracle.ROOT_ID,
                           clear_route_cache: bool = True) -> bytes:
    """The propagate-header proxy-wasm module as Wasm bytes.

    ``abi`` is the proxy-wasm ABI ("0.2.1" default, or "0.1.0" for Istio/ASM 1.7–1.8 era proxies);
    ``root_id`` is the root id the plugin must be configured with: a plugin configured with another
    non-empty root id (host property ``plugin_root_id``) is refused; an empty or absent one is
    accepted. ``root_id=""`` builds a module that accepts any root id.
    """
    from meshfilter.wasm.codegen import assemble

    return assemble(render_propagate_header(abi=abi, root_id=root_id, clear_route_cache=clear_route_cache))
