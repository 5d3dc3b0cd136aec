"""The propagate-header proxy-wasm module, generated as WAT and assembled with wasmtime.

On ``proxy_on_configure`` the module parses the plugin configuration with a strict JSON parser
written in WAT (UTF-8 validated, escapes decoded, nesting at most 64, every value type skipped, the
last duplicate key wins), checks it exactly like :func:`meshfilter.filters.propagate.parse_config`
and, on a problem, logs ``propagate-header: <PROBLEMS text>`` at level error and returns false so
the host refuses the plugin. Name and value are then moved to the bottom of the heap and kept there
(so a refused re-configuration leaves the previous one in force). The name is passed to the host as
configured: Envoy (and every proxy-wasm host) lower-cases header names itself.

On ``proxy_on_request_headers`` it replaces the header (one value, whatever the request carried),
clears the route cache and continues. Nothing is allocated per request.

Exports: the ABI marker, ``memory``, the allocator, ``proxy_on_configure`` and
``proxy_on_request_headers``: nothing else, because Envoy makes one VM call per exported
callback per request.

The module is small (2,046 bytes, under 2 KB; docs/architecture/wasm-codegen.md, "Size"):

* the whole configuration check is one function: a loop over values with the string decoder at its
  only call site, refusals branch to one place that logs the problem (two spans of one packed string
  of all texts, one byte per offset and length);
* the host copies the configuration into the allocator's next block, and a 0 byte is stored after it
  (the allocator always leaves one byte), so reading needs no bounds checks; a reader that finds no
  valid continuation points the read position at ``FAIL_RUN`` zero bytes that nothing writes, after
  which every parse step fails, so the helpers need no error results;
* every string character (raw UTF-8, simple escape, ``\\u`` escape or surrogate pair) becomes one
  code point that is checked once (scalar value, no overlong form) and written back by one encoder,
  which also notes whether it is an RFC 9110 token character and whether it is CR, LF or NUL (the
  name and value checks need no second pass);
* name and value strings are decoded one after the other at the start of the configuration's block
  (other strings where the next one would go), so keeping them is one ``memory.copy``;
* the key being read is the mask of its bits in two locals (3 head_tag_name, 12 head_tag_value): the
  value types and the character flags of both keys are updated without branches and checked by two
  table lookups; a key's string is recorded in low memory, and that record (17 bytes) is the kept
  header once copied;
* simple escapes and ``true``/``false``/``null`` are found by small hashes, not searches.
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

def _tchar_bitmap() -> bytes:
    bits = bytearray(16)
    for b in oracle.TCHARS:
        bits[b >> 3] |= 1 << (b & 7)
    return bytes(bits)


def _type_verdicts() -> bytes:
    """4 * verdict by $types (name type + 4 * value type), types 0 absent, 1 string, 2 other: the order
    of parse_config's checks (missing name, missing value, name not a string, value not a string); name
    type 3 (with value type 0: no member was read) is a top-level value that is not an object."""
    out = bytearray()
    for i in range(11):
        nt, vt = i & 3, i >> 2
        problem = ("not_object" if nt == 3 else "missing_name" if nt == 0 else "missing_value" if vt == 0 else
                   "name_not_string" if nt == 2 else "value_not_string" if vt == 2 else None)
        out.append(PROBLEM_ORDER.index(problem) + 1 if problem else 0)
    return bytes(4 * v for v in out)


def _flag_verdicts() -> bytes:
    """4 * verdict by $fl: bits 0-1 a name character that is not a token character, bit 2 CR/LF/NUL in
    the value (bad name first, as parse_config checks it first)."""
    return bytes(4 * (PROBLEM_ORDER.index("bad_name" if f & 3 else "bad_value") + 1) if f else 0
                 for f in range(8))


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


# the key records (see _PARSE): $key is 3 for head_tag_name, 12 for head_tag_value
_NAME, _VALUE = 3, 12
_REC_END = _VALUE + 8

# zero bytes at FAIL, where a failed read points $p: $hex4 reads up to 3 more digits there, then the
# string decoder reads one more and fails on it
FAIL_RUN = 4


def _esc_table() -> bytes:
    """Simple escapes by hash: slot (c * 69 >> 7) & 14 holds the escape letter c and its byte."""
    t = bytearray(16)
    for dec, let in zip(b'"\\/\x08\x0c\n\r\t', b'"\\/bfnrt', strict=True):
        h = ((let * 69) >> 7) & 14
        assert t[h] == 0, "escape hash collision"
        t[h], t[h + 1] = let, dec
    return bytes(t)


# Readers of the configuration at $p. A reader that finds no valid continuation sets $p to FAIL
# instead of returning an error: every later parse step fails there.
_HELPERS = r"""
(global $p (mut i32) (i32.const 0))
(func $peek (result i32) (i32.load8_u (global.get $p)))
(func $eat (param $c i32) (result i32)
  (global.set $p (i32.add (global.get $p) (local.tee $c (i32.eq (call $peek) (local.get $c)))))
  (local.get $c))
;; the byte at $p, which is eaten (whatever it is)
(func $next (result i32) (call $peek) (drop (call $eat (call $peek))))
(func $ws (result i32) (local $c i32)
  (loop $l
    ;; 9, 10, 13 or 32 (bit 0 of the mask: 32 mod 32; 0 is not in the range)
    (if (i32.and (i32.lt_u (i32.sub (local.tee $c (call $peek)) (i32.const 1)) (i32.const 32))
                 (i32.shr_u (i32.const 0x2601) (local.get $c)))
      (then (drop (call $next)) (br $l))))
  (local.get $c))
;; 4 hex digits: their value
(func $hex4 (result i32) (local $i i32) (local $v i32) (local $c i32)
  (local.set $i (i32.const 4))
  (loop $l
    (if (i32.gt_u (local.tee $c (i32.sub (call $next) (i32.const 48))) (i32.const 9))
      (then
        (if (i32.gt_u (i32.sub (local.tee $c (i32.sub (i32.or (local.get $c) (i32.const 32)) (i32.const 39)))
                               (i32.const 10))
                      (i32.const 5))
          (then (global.set $p (i32.const FAIL))))))
    (local.set $v (i32.or (i32.shl (local.get $v) (i32.const 4)) (local.get $c)))
    (br_if $l (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
  (local.get $v))
;; at least one digit, and all that follow
(func $digits
  (if (i32.gt_u (i32.sub (call $peek) (i32.const 48)) (i32.const 9)) (then (global.set $p (i32.const FAIL))))
  (loop $l
    (if (i32.lt_u (i32.sub (call $peek) (i32.const 48)) (i32.const 10))
      (then (drop (call $next)) (br $l)))))
;; $n bytes at $a equal $m bytes at $b (3, the mask of head_tag_name's bits in $types; else 0); compared
;; from the start, so the 0 byte after the configuration ends a comparison there
(func $eq (param $a i32) (param $n i32) (param $b i32) (param $m i32) (result i32) (local $i i32)
  (block $no
    (br_if $no (i32.ne (local.get $n) (local.get $m)))
    (loop $l
      (if (i32.lt_u (local.get $i) (local.get $n))
        (then
          (br_if $no (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                             (i32.load8_u (i32.add (local.get $b) (local.get $i)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $l))))
    (return (i32.const 3)))
  (i32.const 0))
"""

# proxy_on_configure after the configuration was read: [$p0, $e), a 0 byte at $e. A string is decoded at
# $w (the strings of the keys one after the other, in document order, in [$p0, $w)). $key is 32 while an
# object member's name is expected; after the name head_tag_name (at depth 1) it is 3, after
# head_tag_value 12: the mask of that key's bits in $types and $fl; else 0. $types: bits 0-1 the type of
# head_tag_name (0 absent, 1 string, 2 other; 3: the configuration is not an object), bits 2-3 that of
# head_tag_value. $fl: bits 0-1 set by a character of the name that is not an RFC 9110 token character,
# bit 2 by CR, LF or NUL in the value. The string of a key is recorded at REC + key (its pointer where it
# will be kept, $delta lower) and REC + 4 + key (its length).
_PARSE = r"""
  (local.set $types (i32.mul (i32.ne (call $ws) (i32.const 123)) (i32.const 3)))
  (block $bad
    (block $done
      ;; a value (or, when $key is 32, an object member's name) starts with $c, at $p
      (loop $value
        (local.set $c (call $ws))
        (block $after
          (block $string
            ;; a configuration key's type bits: $key & 5 for a string, $key & 10 for another value
            (local.set $types (i32.xor (local.get $types)
                                       (i32.and (i32.xor (local.get $types)
                                                         (i32.and (local.get $key)
                                                                  (i32.shl (i32.const 5)
                                                                           (i32.ne (local.get $c) (i32.const 34)))))
                                                (local.get $key))))
            (br_if $string (i32.eq (local.get $c) (i32.const 34)))
            (br_if $bad (i32.and (local.get $key) (i32.const 32)))
            (if (i32.eq (i32.or (local.get $c) (i32.const 32)) (i32.const 123))
              (then
                ;; '{' or '[': push it; an empty one is closed by the loop below
                (br_if $bad (i32.shr_u (local.get $depth) (i32.const DEPTH_BITS)))  ;; depth MAX_DEPTH
                (i32.store8 offset=STACK_M1 (local.tee $depth (i32.add (local.get $depth) (i32.const 1)))
                            (local.get $c))
                (drop (call $next))
                (local.set $key (i32.and (local.get $c) (i32.const 32)))
                (br_if $after (i32.eq (call $ws) (i32.add (local.get $key) (i32.const 93))))
                (br $value)))
            ;; true, false, null at 4 * (c % 5) in LITERALS ("nulltruefalse"), 4 or 5 bytes long; another first
            ;; letter does not match (c % 5 == 3 meets the 'e' of false, c % 5 == 4 a byte chosen so); else a
            ;; number
            (if (call $eq (global.get $p)
                          (local.tee $n (i32.add (i32.shr_u (local.tee $c (i32.shl (i32.rem_u (local.get $c)
                                                                                              (i32.const 5))
                                                                                   (i32.const 2)))
                                                            (i32.const 3))
                                                 (i32.const 4)))
                          (i32.add (local.get $c) (i32.const LITERALS)) (local.get $n))
              (then (global.set $p (i32.add (global.get $p) (local.get $n))) (br $after)))
            ;; -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
            (drop (call $eat (i32.const 45)))
            (if (i32.eqz (call $eat (i32.const 48))) (then (call $digits)))
            (if (call $eat (i32.const 46)) (then (call $digits)))
            ;; 'e' or 'E' (the case of what is next), then '+' (45 - 2) or '-' (45 - 0) if next
            (if (call $eat (i32.or (i32.and (call $peek) (i32.const 32)) (i32.const 69)))
              (then
                (drop (call $eat (i32.sub (i32.const 45) (i32.and (call $peek) (i32.const 2)))))
                (call $digits)))
            (br $after))
          ;; a string, decoded at $w: every character (raw UTF-8, simple escape, \u escape or surrogate
          ;; pair) becomes a code point $u, which must be a Unicode scalar value, written back as UTF-8
          ;; a key's string clears that key's flags
          (local.set $d (local.get $w))
          (local.set $fl (i32.and (local.get $fl) (i32.xor (local.get $key) (i32.const -1))))
          (drop (call $next))
          (block $end
            (loop $l
              (local.set $m (i32.const 0))
              (local.set $u (local.tee $c (i32.extend8_s (call $next))))
              (br_if $end (i32.eq (local.get $c) (i32.const 34)))
              (block $cp
                (if (i32.eq (local.get $c) (i32.const 92))
                  (then
                    (if (i32.eq (local.tee $c (call $next)) (i32.const 117))
                      (then
                        ;; D800..DBFF >> 10 is 54, DC00..DFFF >> 10 is 55
                        (br_if $cp (i32.ne (i32.shr_u (local.tee $u (call $hex4)) (i32.const 10)) (i32.const 54)))
                        ;; a high surrogate must be followed by an escaped low one
                        (br_if $bad (i32.eqz (i32.and (call $eat (i32.const 92)) (call $eat (i32.const 117)))))
                        (br_if $bad (i32.ne (i32.shr_u (local.tee $n (call $hex4)) (i32.const 10)) (i32.const 55)))
                        ;; 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                        (local.set $u (i32.add (i32.shl (local.get $u) (i32.const 10))
                                               (i32.sub (local.get $n) (i32.const 0x35FDC00))))
                        (br $cp)))
                    ;; a simple escape: its letter and byte at ESC + ((letter * 69 >> 7) & 14)
                    (br_if $bad (i32.ne (i32.load8_u offset=ESC
                                          (local.tee $n (i32.and (i32.shr_u (i32.mul (local.get $c) (i32.const 69))
                                                                            (i32.const 7))
                                                                 (i32.const 14))))
                                        (local.get $c)))
                    (local.set $u (i32.load8_u offset=ESC1 (local.get $n)))
                    (br $cp)))
                (br_if $cp (i32.gt_s (local.get $c) (i32.const 31)))  ;; ASCII but control characters
                ;; UTF-8 ($c sign-extended): lead byte C2..F4 (this also refuses control characters), then $m
                ;; continuation bytes
                (br_if $bad (i32.gt_u (i32.add (local.get $c) (i32.const 62)) (i32.const 0x32)))
                (local.set $m (local.tee $n (i32.sub (i32.clz (i32.xor (local.get $c) (i32.const -1)))
                                                     (i32.const 25))))
                (local.set $u (i32.and (local.get $c) (i32.shr_u (i32.const 63) (local.get $n))))
                (loop $k
                  (br_if $bad (i32.gt_u (local.tee $c (i32.xor (call $next) (i32.const 0x80))) (i32.const 63)))
                  (local.set $u (i32.or (i32.shl (local.get $u) (i32.const 6)) (local.get $c)))
                  (br_if $k (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
              ;; at most U+10FFFF, not a surrogate, and no overlong form: its UTF-8 length ($n + 1) is not
              ;; below the number of bytes it was read from
              (br_if $bad (i32.or (i32.or (i32.gt_u (local.get $u) (i32.const 0x10FFFF))
                                          (i32.eq (i32.shr_u (local.get $u) (i32.const 11)) (i32.const 27)))
                                  ;; $n: 1 above U+007F (fewer than 25 leading zeros), 2 above U+07FF, 3 above U+FFFF
                                  (i32.lt_u (local.tee $n
                                              (i32.add (i32.add (i32.lt_u (local.tee $c (i32.clz (local.get $u)))
                                                                          (i32.const 25))
                                                                (i32.lt_u (local.get $c) (i32.const 21)))
                                                       (i32.lt_u (local.get $c) (i32.const 16))))
                                            (local.get $m))))
              ;; $fl: bits 0-1 set by a character that is not an RFC 9110 token character, bit 2 by CR, LF or
              ;; NUL, those of the key's mask
              (local.set $fl (i32.or (local.get $fl)
                                    (i32.and (local.get $key) (i32.or (i32.or (local.get $n)
                                                    (i32.eqz (i32.and (i32.shr_u (i32.load offset=TCHARS
                                                                                   (i32.and (i32.shr_u (local.get $u)
                                                                                                       (i32.const 3))
                                                                                            (i32.const 12)))
                                                                                 (local.get $u))
                                                                      (i32.const 1))))
                                            (i32.shl (i32.and (i32.lt_u (local.get $u) (i32.const 14))
                                                              (i32.shr_u (i32.const 0x2401) (local.get $u)))
                                                     (i32.const 2))))))
              ;; write $u as UTF-8 at $d: the lead byte's prefix (none, C0, E0, F0) is the low byte of
              ;; 0x3C0 >> ($n - 1) (a shift by 31 for $n = 0)
              (i32.store8 (local.get $d)
                          (i32.or (i32.shr_u (i32.const 0x3C0) (i32.sub (local.get $n) (i32.const 1)))
                                  (i32.shr_u (local.get $u) (i32.mul (local.get $n) (i32.const 6)))))
              (loop $wr
                (if (local.get $n)
                  (then
                    (i32.store8 (local.tee $d (i32.add (local.get $d) (i32.const 1)))
                      (i32.or (i32.const 0x80)
                              (i32.and (i32.shr_u (local.get $u)
                                                  (i32.mul (local.tee $n (i32.sub (local.get $n) (i32.const 1)))
                                                           (i32.const 6)))
                                       (i32.const 63))))
                    (br $wr))))
              (local.set $d (i32.add (local.get $d) (i32.const 1)))
              (br $l)))
          (local.set $n (i32.sub (local.get $d) (local.get $w)))
          (if (i32.and (local.get $key) (i32.const 32))
            (then
              ;; a member name: at depth 1, which configuration key (3 name, 12 value, 0 another)
              (local.set $key (i32.mul (i32.add (call $eq (local.get $w) (local.get $n) (i32.const NAME_KEY)
                                                          (i32.const NAME_KEY_LEN))
                                                (i32.shl (call $eq (local.get $w) (local.get $n) (i32.const VALUE_KEY)
                                                                   (i32.const VALUE_KEY_LEN))
                                                         (i32.const 2)))
                                       (i32.eq (local.get $depth) (i32.const 1))))
              (br_if $bad (i32.ne (call $ws) (i32.const 58)))
              (drop (call $next))
              (br $value)))
          ;; the string value of a configuration key: record it
          (if (local.get $key)
            (then
              (i32.store offset=REC (local.get $key) (i32.sub (local.get $w) (local.get $delta)))
              (i32.store offset=REC4 (local.get $key) (local.get $n))
              (local.set $w (local.get $d)))))
        ;; after a value: close containers, or go on after a comma
        (loop $close
          (local.set $c (call $ws))
          (br_if $done (i32.eqz (local.get $depth)))
          (drop (call $next))
          (if (i32.eq (local.get $c) (i32.const 44))
            (then
              (local.set $key (i32.and (i32.load8_u offset=STACK_M1 (local.get $depth)) (i32.const 32)))
              (br $value)))
          ;; ']' (93) closes '[' (91), '}' (125) closes '{' (123)
          (br_if $bad (i32.ne (local.get $c)
                              (i32.add (i32.load8_u offset=STACK_M1 (local.get $depth)) (i32.const 2))))
          (local.set $depth (i32.sub (local.get $depth) (i32.const 1)))
          (br $close))))
    (br_if $bad (i32.ne (global.get $p) (local.get $e)))
    (br_if $refuse (local.tee $n (i32.load8_u offset=TYPE_VERDICTS (local.get $types))))
    (local.set $n (i32.const EMPTY_NAME))
    (br_if $refuse (i32.eqz (i32.load offset=NAME_LEN (i32.const 0))))
    (br_if $refuse (local.tee $n (i32.load8_u offset=FLAG_VERDICTS (local.get $fl))))
    ;; keep [p0, w) (the keys' strings, in document order) at the heap start, and the key records with it
    (memory.copy (i32.const HEAP_START) (local.get $p0) (i32.sub (local.get $w) (local.get $p0)))
    (memory.copy (i32.const KEPT) (i32.const REC_NAME) (i32.const KEPT_LEN))
    (global.set $bump (i32.sub (local.get $w) (local.get $delta)))
    (return (i32.const 1)))
  (local.set $n (i32.const INVALID_JSON))"""


# The log texts are two spans each; these first halves were found by a search for the smallest packing
# (change one split point at random, keep it if pack_strings of all parts got no longer: 242 bytes
# against 268 for _halves). A text that does not start with its entry (a changed text) uses _halves.
_FIRST_HALVES = (
    "configuration is not ", "configuration is not a ", "missing key ", "missing key ", oracle.NAME_KEY,
    oracle.VALUE_KEY, f"{oracle.NAME_KEY} is ", f"{oracle.NAME_KEY} is not a valid ", f"{oracle.VALUE_KEY} con",
    "plugin")
_LITERALS = b"nulltruefalse"  # at 4 * (c % 5) for c = n, t, f; length 4 + (offset >> 3)


def _split(i: int, texts: list[bytes], root: bytes) -> tuple[bytes, bytes]:
    text, half = texts[i], _FIRST_HALVES[i].encode()
    return (half, text[len(half):]) if text.startswith(half) else _halves(text, texts, root)


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


def _sub(text: str, values: dict[str, int]) -> str:
    for k in sorted(values, key=len, reverse=True):
        text = text.replace(k, str(values[k]))
    return text


def render_propagate_header(*, abi: str = DEFAULT_ABI, root_id: str = oracle.ROOT_ID,
                            clear_route_cache: bool = True) -> str:
    """The WAT text of the propagate-header module (see the module docstring).

    ``clear_route_cache=False`` leaves out the explicit route-cache clear after the replace
    (bench/bench_wasm.py measures what it costs; Envoy 1.40 clears the cache itself on a header change).
    """
    root = _validate_root_id(root_id)
    mb = ModuleBuilder(abi, data_base=0, alloc_align=1)
    # host call results (pointer at 0, length at 4); while parsing, the key records at REC + key: pointer
    # (3..6 head_tag_name, 12..15 head_tag_value) and length (7..10, 16..19)
    slots = mb.reserve(_REC_END)
    # the kept header: the records' bytes 3..19 (copied on acceptance), zero until then
    kept = mb.reserve(_REC_END - _NAME, align=1)
    texts = [oracle.PROBLEMS[p].encode() for p in PROBLEM_ORDER]
    if root:
        texts.append(f"{ROOT_ID_MISMATCH} ".encode() + root)
    halves = [_split(i, texts, root) for i in range(len(texts))]
    strings = [oracle.NAME_KEY.encode(), oracle.VALUE_KEY.encode(), _LITERALS]
    if root:
        strings += [b"plugin_root_id", root]
    if clear_route_cache and abi != "0.1.0":
        strings.append(b"clear_route_cache")
    parts = [h for pair in halves for h in pair]
    packed = pack_strings(parts + strings)
    # A failed parse points $p at FAIL_RUN zero bytes that nothing writes (zero bytes before the first
    # data byte cost nothing); they are also the token bitmap's bytes for characters 0-31. Then the tables
    # (below 128: one-byte offsets), then the texts: spans are one byte each (offset from the texts' start,
    # length) if they fit.
    bitmap = _tchar_bitmap()
    assert bitmap[:FAIL_RUN] == bytes(FAIL_RUN)
    fail = mb.reserve(FAIL_RUN, align=1).offset
    tchars = mb.data(bitmap[FAIL_RUN:]).offset - FAIL_RUN
    assert tchars == fail
    verdicts = mb.data(_type_verdicts())
    flag_verdicts = mb.data(_flag_verdicts())
    esc = mb.data(_esc_table())
    rel = [packed.index(h) for h in parts]
    w = 1 if all(r + len(h) < 256 for r, h in zip(rel, parts, strict=True)) else 2
    table = mb.data(b"".join(r.to_bytes(w, "little") + len(h).to_bytes(w, "little")
                             for r, h in zip(rel, parts, strict=True)))
    base = mb.data(packed).offset
    name_key, value_key = mb.data(oracle.NAME_KEY), mb.data(oracle.VALUE_KEY)
    literals = mb.data(_LITERALS)
    probe = mb.static_byte(literals.offset + 16)  # see _PARSE: where a letter with c % 5 == 4 is compared
    if probe is None or probe % 5 == 4:
        literals = mb.data(_LITERALS + b"!!!!")
    line = mb.data(oracle.LOG_PREFIX)
    mb.reserve(max(len(t) for t in texts))
    stack = mb.reserve(oracle.MAX_DEPTH, align=1)  # the opening byte of each open container
    heap = mb.heap_start
    mb.func(_sub(_HELPERS, {"FAIL": fail}))
    root_check = ""
    status_ok = f"(i32.const {slots.offset}) (i32.const {slots.offset + 4})"
    if root:
        path, want = mb.data("plugin_root_id"), mb.data(root)
        # a host without the property, or an empty root id (the VM's default root context), is accepted
        root_check = f"""
  (if (local.tee $c (i32.mul (i32.eqz (call {mb.use("proxy_get_property")} {path.ptr} {path.len} {status_ok}))
                             (i32.load (i32.const {slots.offset + 4}))))
    (then
      (local.set $n (i32.const {4 * _ROOT_VERDICT}))
      (br_if $refuse (i32.eqz (call $eq (i32.load (i32.const {slots.offset})) (local.get $c)
                                        {want.ptr} {want.len})))))"""
    if abi == "0.1.0":
        read = f"(call {mb.use('proxy_get_configuration')} {status_ok})"
    else:
        read = (f"(call {mb.use('proxy_get_buffer_bytes')} (i32.const {BufferType.PLUGIN_CONFIGURATION}) "
                f"(i32.const 0) (local.get $b) {status_ok})")
    lit = literals.offset
    parse = _sub(_PARSE, {
        "LITERALS": lit, "NAME_KEY_LEN": name_key.length, "NAME_KEY": name_key.offset,
        "VALUE_KEY_LEN": value_key.length, "VALUE_KEY": value_key.offset,
        "TYPE_VERDICTS": verdicts.offset, "FLAG_VERDICTS": flag_verdicts.offset, "TCHARS": tchars,
        "HEAP_START": heap, "ESC1": esc.offset + 1, "ESC": esc.offset,
        "STACK_M1": stack.offset - 1, "DEPTH_BITS": oracle.MAX_DEPTH.bit_length() - 1,
        "REC4": slots.offset + 4, "REC_NAME": slots.offset + _NAME, "REC": slots.offset,
        "NAME_LEN": slots.offset + 4 + _NAME, "KEPT_LEN": kept.length, "KEPT": kept.offset,
        **{name.upper(): 4 * (PROBLEM_ORDER.index(name) + 1)
           for name in ("invalid_json", "empty_name", "bad_name", "bad_value")}})
    # proxy_on_configure(root_context_id $a, configuration_size $b); the configuration is [$p0, $e),
    # followed by a 0 byte (empty when the host has none)
    ld = "i32.load8_u" if w == 1 else "i32.load16_u"
    t0 = table.offset - 4 * w  # problem i is $n = 4 * i (1-based)
    mb.callback("proxy_on_configure", f"""
  ;; between callbacks $bump is the end of what was kept. The host copies the configuration into the block
  ;; our allocator hands out next, at $bump (an empty one needs no block); its length is in the slot unless
  ;; the call failed. The root id is read after it (a refused configuration frees both: $bump = $p0).
  (global.set $p (local.tee $w (local.tee $p0 (global.get $bump))))
  (local.set $e (i32.add (local.get $p0) (i32.mul (i32.eqz {read}) (i32.load (i32.const {slots.offset + 4})))))
  (block $refuse{root_check}
  (i32.store8 (local.get $e) (i32.const 0))
  ;; what is kept moves by -$delta, to the heap start
  (local.set $delta (i32.sub (local.get $p0) (i32.const {heap})))
{parse})
  (global.set $bump (local.get $p0))
  ;; refused: log problem $n / 4 ("propagate-header: <text>", the text two spans of the table) at level error
  (local.set $d (i32.const {line.offset + line.length}))
  {"(local.set $n (i32.shl (local.get $n) (i32.const 1)))" if w == 2 else ""}
  (loop $span
    (memory.copy (local.get $d) (i32.add ({ld} offset={t0} (local.get $n)) (i32.const {base}))
                 (local.tee $c ({ld} offset={t0 + w} (local.get $n))))
    (local.set $d (i32.add (local.get $d) (local.get $c)))
    (br_if $span (i32.and (local.tee $n (i32.add (local.get $n) (i32.const {2 * w}))) (i32.const {2 * w}))))
  {mb.log_ptr(LogLevel.ERROR, line.ptr, f"(i32.sub (local.get $d) {line.ptr})")}
  (i32.const 0)""", locals_="(local $c i32) (local $depth i32) (local $key i32) (local $n i32) (local $types i32) "
                    "(local $fl i32) (local $e i32) (local $p0 i32) (local $delta i32) (local $w i32) "
                    "(local $d i32) (local $u i32) (local $m i32)")

    # proxy_on_request_headers(context_id, num_headers[, end_of_stream])
    clear = mb.clear_route_cache() if clear_route_cache else ""
    hn, hv, hvl = (f"(i32.load offset={kept.offset + at} (i32.const 0))" for at in (0, 9, 13))
    mb.callback("proxy_on_request_headers", f"""
  (if (local.tee $b (i32.load offset={kept.offset + 4} (i32.const 0)))
    (then
      {mb.replace_header(hn, "(local.get $b)", hv, hvl)}
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
