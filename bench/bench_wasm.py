"""Benchmark: what the propagate-header Wasm module costs Envoy per request, and what each of its
host calls costs, side by side with no filter, Envoy's native header_mutation and a Lua filter.

The variants are the table VARIANTS below (one entry each; bench/_envoy_bench.py runs them: one
Envoy each pinned to CPU 0, wrk pinned to CPU 1, alternated rounds, medians, Envoy CPU µs per
request from /proc, ratios to no filter, load average recorded; a busy machine's table is marked
NOT A RESULT and not written). The Wasm rows decompose the module's cost:

* *Wasm no-op*: a module whose request callback returns at once: Envoy's fixed cost of a Wasm
  filter (per-stream context, one VM entry);
* *+ lifecycle exports*: the same with ``proxy_on_context_create``, ``proxy_on_done``,
  ``proxy_on_log`` and ``proxy_on_delete`` exported (what an SDK build exports): four more VM entries;
* *replace only* / *clear only*: one host call each (``proxy_replace_header_map_value``;
  ``proxy_call_foreign_function("clear_route_cache")``);
* *propagate-header* (both calls, ABI 0.2.1) and its ABI 0.1.0 build (``proxy_clear_route_cache``,
  a plain host call instead of the foreign-function lookup).

Writes the ``wasm`` section of docs/benchmarks.md.

    python bench/bench_wasm.py [--rounds 8] [--seconds 3] [--connections 32] [--only NAME] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _envoy_bench as eb  # noqa: E402
from bench._report import median, write_section  # noqa: E402
from meshfilter.envoy import bootstrap as bs  # noqa: E402
from meshfilter.filters.propagate import ROOT_ID  # noqa: E402
from meshfilter.sdk import examples  # noqa: E402
from meshfilter.wasm import ModuleBuilder, build_propagate_header  # noqa: E402
from meshfilter.wasm.python_filter import build_python_filter  # noqa: E402

NAME, VALUE = "route-v", "hello2v2"
CONFIG = f'{{"head_tag_name": "{NAME}", "head_tag_value": "{VALUE}"}}'
LUA = f"""function envoy_on_request(request_handle)
  request_handle:headers():replace("{NAME}", "{VALUE}")
end
"""
BASELINE = "no filter"
REPEAT = 20  # host calls per request in the amplified probes


def probe_module(*, replace: int = 0, clear: int = 0, lifecycle: bool = False) -> bytes:
    """A module with no configuration whose request callback makes the given host calls, each the
    given number of times (none: a no-op). Repeating a call makes its cost stand out of the noise."""
    mb = ModuleBuilder()
    name, value = mb.data(NAME), mb.data(VALUE)
    body = [mb.replace_header(name.ptr, name.len, value.ptr, value.len)] * replace + [mb.clear_route_cache()] * clear
    mb.callback("proxy_on_configure", "(i32.const 1)")
    mb.callback("proxy_on_request_headers", "\n".join([*body, "(i32.const 0)"]))
    if lifecycle:
        mb.callback("proxy_on_context_create", "")
        mb.callback("proxy_on_done", "(i32.const 1)")
        mb.callback("proxy_on_log", "")
        mb.callback("proxy_on_delete", "")
    return mb.build()


def wasm(module: bytes, config: str = "", root_id: str = "") -> list[dict[str, object]]:
    return [bs.wasm_filter(code=bs.wasm_code(inline=module), configuration=config, root_id=root_id)]


def variants() -> list[eb.Variant]:
    """The table: one entry per variant (the sdk adds "propagate-header from Python" here)."""
    ph = build_propagate_header()
    ph01 = build_propagate_header(abi="0.1.0")
    ph_noclear = build_propagate_header(clear_route_cache=False)
    noop, noop_life = probe_module(), probe_module(lifecycle=True)
    clear_only = probe_module(clear=1)
    replace_x, clear_x = probe_module(replace=REPEAT), probe_module(clear=REPEAT)
    from_python = build_python_filter(examples.path("propagate-header"))
    V = eb.Variant
    return [
        V(BASELINE, [], "direct response, no HTTP filter"),
        V("native header_mutation", [bs.header_mutation_set(NAME, VALUE)], "the same replace, in C++"),
        V("Lua", [bs.lua_filter(LUA)], "the same replace, `headers():replace`"),
        V("Wasm no-op", wasm(noop), "fixed cost: stream context + 1 VM entry", noop),
        V("Wasm no-op + lifecycle exports", wasm(noop_life), "+ 4 VM entries (create/done/log/delete)", noop_life),
        V("Wasm clear only", wasm(clear_only), "+ foreign function clear_route_cache", clear_only),
        V("propagate-header, no clear", wasm(ph_noclear, CONFIG, ROOT_ID), "+ replace (no explicit clear)",
          ph_noclear),
        V("propagate-header", wasm(ph, CONFIG, ROOT_ID), "replace + clear (ABI 0.2.1)", ph),
        V("propagate-header ABI 0.1.0", wasm(ph01, CONFIG, ROOT_ID), "replace + proxy_clear_route_cache", ph01),
        V("propagate-header from Python", wasm(from_python, CONFIG, ROOT_ID),
          "meshfilter.sdk.examples.propagate_header, `meshfilter wasm build python`", from_python),
        V(f"Wasm replace ×{REPEAT}", wasm(replace_x), f"one host call, {REPEAT} times: (row − no-op) / {REPEAT} "
          "is its cost", replace_x),
        V(f"Wasm clear ×{REPEAT}", wasm(clear_x), f"foreign function, {REPEAT} times", clear_x),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    eb.add_arguments(ap, rounds=8, seconds=3, connections=32)
    args = ap.parse_args()

    builds = []
    for _ in range(5):
        t0 = time.perf_counter()
        build_propagate_header()
        builds.append(time.perf_counter() - t0)
    chosen = eb.select(variants(), args.only, BASELINE)
    result = eb.run(chosen, rounds=args.rounds, seconds=args.seconds, connections=args.connections,
                    headers=[(NAME, "old")])
    body = "\n".join([
        "## propagate-header Wasm module (`bench/bench_wasm.py`)",
        "",
        eb.method(result),
        "",
        eb.conditions(result),
        "",
        *eb.table(result, BASELINE),
        "",
        f"- Build time of `build_propagate_header()` (WAT generation + `wasmtime.wat2wasm`): "
        f"{median(builds) * 1000:.1f} ms (median of 5).",
        "- How to read the Wasm rows: each adds one thing to the row above it (see the *shows* column); "
        "the difference of two rows' *Envoy CPU µs/req* is what that thing costs. docs/wasm.md "
        "(\"What a request costs\") explains the cost model.",
    ])
    print(body)
    if eb.should_write(result, write=not args.no_write, write_noisy=args.write_noisy):
        write_section("wasm", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
