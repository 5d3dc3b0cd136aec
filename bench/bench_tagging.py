"""Overhead of the header-tagging filter in a real Envoy: Lua vs Wasm, 1 rule vs 20 rules, and where
the Wasm module's time goes.

The variants are the table VARIANTS below (one entry each; bench/_envoy_bench.py runs them: one Envoy
each pinned to CPU 0, wrk pinned to CPU 1 against a direct-response route, alternated rounds,
medians, Envoy CPU µs per request from /proc, ratios to no filter, load average recorded; a busy
machine's table is marked NOT A RESULT and not written).

* ``lua-N`` / ``wasm-N``: ``meshfilter lua tag`` output and ``meshfilter wasm build tag-rules`` for N
  rules: N - 1 rules that do not match the request, then the seed rule (user-agent contains iPhone13);
* the probes decompose the Wasm module: a no-op (the fixed cost of a Wasm filter), reading the
  request headers with ``proxy_get_header_map_pairs`` (the host serializes every header and calls the
  module's allocator for the buffer: a second VM entry), reading one header with
  ``proxy_get_header_map_value``, and the module without its explicit route-cache clear.

Writes the ``tagging`` section of docs/benchmarks.md.

    python bench/bench_tagging.py [--seconds 5] [--rounds 5] [--connections 8] [--only NAME] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _envoy_bench as eb  # noqa: E402
from bench._report import write_section  # noqa: E402
from meshfilter.envoy.bootstrap import wasm_code, wasm_filter  # noqa: E402
from meshfilter.filters import tagging as t  # noqa: E402
from meshfilter.k8s.lua_envoyfilter import lua_http_filter  # noqa: E402
from meshfilter.lua.codegen import compile_rules  # noqa: E402
from meshfilter.lua.python_filter import build_python_filter as python_to_lua  # noqa: E402
from meshfilter.sdk import examples  # noqa: E402
from meshfilter.wasm import ModuleBuilder, build_tag_rules  # noqa: E402
from meshfilter.wasm.codegen import MapType  # noqa: E402
from meshfilter.wasm.python_filter import build_python_filter  # noqa: E402

UA = "Mozilla/5.0 (iPhone13,2; CPU iPhone OS 15_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
BASELINE = "none"


def ruleset(n: int) -> t.RuleSet:
    """``n - 1`` rules that do not match the benchmark request, then the seed rule."""
    kinds = ["contains", "prefix", "suffix", "exact"]
    rules = [t.make_rule(i, name=f"miss-{i}", header="user-agent" if i % 2 == 0 else f"x-h{i}",
                         kind=kinds[i % 4], value=f"Android-{i}", set=[("x-asm-prefer-tag", f"v{i}")])
             for i in range(n - 1)]
    rules.append(t.make_rule(n - 1, name="iphone13", header="user-agent", kind="contains", value="iPhone13",
                             set=[("x-asm-prefer-tag", "version-gray")]))
    return t.make_ruleset(rules, [("x-asm-prefer-tag", "version-base")])


def wasm(module: bytes) -> list[dict[str, Any]]:
    return [wasm_filter(code=wasm_code(inline=module), configuration="", root_id="", vm_id="tag-rules",
                        name="tag-rules")]


def probe_module(*, pairs: bool = False, get: bool = False) -> bytes:
    """A request callback that only reads the request headers (all pairs, or user-agent) and continues."""
    mb = ModuleBuilder()
    slots = mb.reserve(8)
    out = f"(i32.const {slots.offset}) (i32.const {slots.offset + 4})"
    body = [mb.reset_heap()]
    if pairs:
        body.append(f"(drop (call {mb.use('proxy_get_header_map_pairs')} (i32.const {MapType.REQUEST_HEADERS}) {out}))")
    if get:
        ua = mb.data("user-agent")
        body.append(f"(drop (call {mb.use('proxy_get_header_map_value')} (i32.const {MapType.REQUEST_HEADERS}) "
                    f"{ua.ptr} {ua.len} {out}))")
    mb.callback("proxy_on_request_headers", "\n".join([*body, "(i32.const 0)"]))
    return mb.build()


def variants() -> list[eb.Variant]:
    """The table: one entry per variant (the sdk adds "tagging example from Python" here)."""
    V = eb.Variant
    out = [V(BASELINE, [], "direct response, no HTTP filter")]
    for n in (1, 20):
        module = build_tag_rules(ruleset(n))
        out.append(V(f"lua-{n}", [lua_http_filter(compile_rules(ruleset(n)))], f"`meshfilter lua tag`, {n} rule(s)"))
        out.append(V(f"wasm-{n}", wasm(module), f"`meshfilter wasm build tag-rules`, {n} rule(s)", module))
    noclear = build_tag_rules(ruleset(1), clear_route_cache=False)
    noop, pairs, get = probe_module(), probe_module(pairs=True), probe_module(get=True)
    from_python = build_python_filter(examples.path("gateway-tag"))
    out += [
        V("tagging example from Python", wasm(from_python), "meshfilter.sdk.examples.gateway_tag, "
          "`meshfilter wasm build python` (the lua-1 rule; header read with the map's pairs)", from_python),
        V("tagging example from Python, Lua", [lua_http_filter(python_to_lua(examples.path("gateway-tag")))],
          "the same class, `meshfilter lua build`"),
        V("wasm-1, no clear", wasm(noclear), "wasm-1 without the foreign-function route-cache clear", noclear),
        V("probe: no-op", wasm(noop), "fixed cost: stream context + 1 VM entry", noop),
        V("probe: read all headers", wasm(pairs), "+ proxy_get_header_map_pairs (and its allocator call)", pairs),
        V("probe: read user-agent", wasm(get), "+ proxy_get_header_map_value (and its allocator call)", get),
    ]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    eb.add_arguments(ap, rounds=5, seconds=5, connections=8)
    args = ap.parse_args()
    result = eb.run(eb.select(variants(), args.only, BASELINE), rounds=args.rounds, seconds=args.seconds,
                    connections=args.connections, headers=[("user-agent", UA)])
    body = "\n".join([
        "### Header tagging: Lua vs Wasm filter overhead (`bench/bench_tagging.py`)",
        "",
        "Request: `user-agent` matching only the last rule (so all rules run). " + eb.method(result),
        "",
        eb.conditions(result),
        "",
        *eb.table(result, BASELINE),
        "",
        "The *probe* rows take the Wasm module apart (see the *shows* column; the difference of two rows' "
        "*Envoy CPU µs/req* is what the added step costs); docs/architecture/wasm-tag-rules.md explains "
        "where the time goes.",
    ])
    print(body)
    if eb.should_write(result, write=not args.no_write, write_noisy=args.write_noisy):
        write_section("tagging", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
