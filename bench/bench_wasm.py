"""Benchmark: Envoy throughput with the propagate-header Wasm module, side by side with no filter,
Envoy's native header_mutation filter and a Lua filter doing the same replace.

One Envoy per variant (one worker, pinned to CPU 0), all started up front; a direct-response route;
wrk (1 thread, 32 connections, pinned to CPU 1) against each in turn, the order rotating each round.
Reports medians, ratios to no filter, Envoy CPU µs per request, module size and build time,
emulator calls per second, and each Envoy's RSS after 200,000 requests. Writes the ``wasm``
section of docs/benchmarks.md.

    python bench/bench_wasm.py [--rounds 8] [--seconds 3] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import median, write_section  # noqa: E402
from meshfilter.envoy import ProcessBackend  # noqa: E402
from meshfilter.envoy import bootstrap as bs  # noqa: E402
from meshfilter.envoy.runner import EnvoyProcess  # noqa: E402
from meshfilter.filters.propagate import ROOT_ID  # noqa: E402
from meshfilter.wasm import ModuleBuilder, build_propagate_header  # noqa: E402

NAME, VALUE = "route-v", "hello2v2"
CONFIG = f'{{"head_tag_name": "{NAME}", "head_tag_value": "{VALUE}"}}'
LUA = f"""function envoy_on_request(request_handle)
  request_handle:headers():replace("{NAME}", "{VALUE}")
end
"""
RSS_AFTER = 200_000
RSS_VARIANTS = ("no filter", "meshfilter Wasm")  # topped up to RSS_AFTER requests, then RSS read


def noop_module() -> bytes:
    """A proxy-wasm module whose request callback does nothing: Envoy's fixed per-stream Wasm cost."""
    mb = ModuleBuilder()
    mb.callback("proxy_on_configure", "(i32.const 1)")
    mb.callback("proxy_on_request_headers", "(i32.const 0)")
    return mb.build()


def variants(module: bytes) -> dict[str, list[dict[str, Any]]]:
    return {
        "no filter": [],
        "native header_mutation": [bs.header_mutation_set(NAME, VALUE)],
        "Lua": [bs.lua_filter(LUA)],
        "meshfilter Wasm": [bs.wasm_filter(code=bs.wasm_code(inline=module), configuration=CONFIG,
                                           root_id=ROOT_ID)],
        "Wasm no-op (baseline)": [bs.wasm_filter(code=bs.wasm_code(inline=noop_module()), configuration="",
                                                 root_id="noop")],
    }


def wrk(url: str, seconds: float, connections: int = 32) -> tuple[float, int]:
    """(requests/second, requests) from one wrk run pinned to CPU 1."""
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                          "-H", f"{NAME}: old", url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    n = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out:
        raise SystemExit(f"non-2xx answers from {url}:\n{out}")
    return rps, n


def emulator_rate(module: bytes, seconds: float = 2.0) -> float | None:
    try:
        from meshfilter.wasm.emulator import HostEmulator
    except ImportError:
        return None
    emu = HostEmulator(module, root_id=ROOT_ID, plugin_config=CONFIG)
    assert emu.start()
    headers = [(":path", "/"), (":method", "GET"), (NAME, "old")]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        emu.run_request(headers)
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    # SIGTERM (e.g. from `timeout`) must unwind through `finally` so every Envoy started here stops
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    builds = []
    for _ in range(5):
        t0 = time.perf_counter()
        module = build_propagate_header()
        builds.append(time.perf_counter() - t0)
    module01 = build_propagate_header(abi="0.1.0")

    backend = ProcessBackend()
    envoys: dict[str, EnvoyProcess] = {}
    rps: dict[str, list[float]] = {}
    cpu_us: dict[str, list[float]] = {}
    served: dict[str, int] = {}
    try:
        for name, filters in variants(module).items():
            envoys[name] = backend.start(bs.filter_bootstrap(filters), name=name.replace(" ", "-"),
                                         concurrency=1, log_level="warning", cpu=0)
            rps[name], cpu_us[name], served[name] = [], [], 0
            wrk(envoys[name].url(path="/"), 1)  # warm-up
        names = list(envoys)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                env = envoys[name]
                c0 = env.cpu_seconds()
                rate, n = wrk(env.url(path="/"), args.seconds)
                cpu_us[name].append((env.cpu_seconds() - c0) / n * 1e6)
                rps[name].append(rate)
                served[name] += n
                print(f"round {r + 1} {name:24s} {rate:9.0f} req/s  {cpu_us[name][-1]:6.1f} µs CPU/req",
                      file=sys.stderr)
        rss: dict[str, float] = {}
        for name in RSS_VARIANTS:
            env = envoys[name]
            while served[name] < RSS_AFTER:
                served[name] += wrk(env.url(path="/"), 5)[1]
            rss[name] = env.rss_bytes() / 2**20
    finally:
        for env in envoys.values():
            env.stop()

    emu = emulator_rate(module)
    base = median(rps["no filter"])
    base_cpu = median(cpu_us["no filter"])
    rows = ["| filter | req/s (median) | ratio to no filter | Envoy CPU µs/request | added µs/request "
            "| CPU ratio | RSS after 200k requests |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in envoys:
        m, c = median(rps[name]), median(cpu_us[name])
        mem = f"{rss[name]:.0f} MiB" if name in rss else "(not measured)"
        rows.append(f"| {name} | {m:,.0f} | {m / base:.2f} | {c:.1f} | {c - base_cpu:+.1f} | {base_cpu / c:.2f} "
                    f"| {mem} |")
    body = "\n".join([
        "## propagate-header Wasm module (`bench/bench_wasm.py`)",
        "",
        f"Envoy {_envoy_version()} (V8), `--concurrency 1` pinned to CPU 0; `wrk -t1 -c32` pinned to CPU 1; a "
        f"direct-response route; {args.rounds} rounds of {args.seconds:g} s per variant, order rotated each round.",
        "",
        *rows,
        "",
        "*CPU ratio* is no-filter CPU per request divided by the variant's: the throughput ratio Envoy "
        "would reach if its core were the only bottleneck.",
        f"Load average when the run ended: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; on a shared "
        "machine single samples vary by ±50 %, so read the medians as ±0.15.",
        "",
        _verdict({n: median(v) / base for n, v in rps.items()}),
        "",
        f"- Module size: {len(module)} bytes (ABI 0.2.1), {len(module01)} bytes (ABI 0.1.0).",
        f"- Build time (`build_propagate_header()`, WAT generation + `wasmtime.wat2wasm`): "
        f"{median(builds) * 1000:.0f} ms (median of 5).",
        f"- Emulator: {emu:,.0f} requests/second (`HostEmulator.run_request`: context create, request "
        f"headers, done; one module call per callback)." if emu else "- Emulator: not available.",
        "",
        "Reference (issue 2, same kind of machine): native 0.92–0.97, Lua 0.70–0.84, AssemblyScript-SDK "
        "build of this filter (22.7 KB, 5 s build) 0.51–0.64.",
        "",
        WHY_GAP,
    ])
    print(body)
    if not args.no_write:
        write_section("wasm", body)
    return 0


WHY_GAP = """**Where the gap to the native filter comes from.** The native `header_mutation` filter
is C++ compiled into Envoy: one `setCopy` on the header map. The Wasm filter does the same
`setCopy` (`proxy_replace_header_map_value`), but around it Envoy creates a per-stream Wasm
context and crosses into V8 for each exported callback: `proxy_on_request_headers` is our only
per-request export (without `proxy_on_context_create`, `proxy_on_done`, `proxy_on_log`,
`proxy_on_delete` exports Envoy skips those calls), plus two host calls out of V8
(`proxy_replace_header_map_value` and `proxy_call_foreign_function("clear_route_cache")`), each
copying strings across the VM boundary. The route-cache clear also makes the router re-run route
matching, which the native filter does not ask for. The *Wasm no-op* row is a module whose request
callback returns at once: the difference between it and *no filter* is Envoy's fixed cost of running
any Wasm filter; the difference between it and our module is what our two host calls cost. The
module's own work (no allocation, no parsing per request) is a few dozen instructions; an SDK build
pays the same fixed cost plus per-request allocations and more exported callbacks."""


def _verdict(ratio: dict[str, float]) -> str:
    ours, lua, native = ratio["meshfilter Wasm"], ratio["Lua"], ratio["native header_mutation"]
    vs_lua = "costs less than" if ours > lua else "does not beat"
    return (f"In this run the module reaches {ours:.2f} of no-filter throughput: it {vs_lua} the Lua filter "
            f"({lua:.2f}), against 0.51–0.64 for the AssemblyScript-SDK build in the issue's reference; "
            f"the native filter reaches {native:.2f}, a gap of {native - ours:.2f}.")


def _envoy_version() -> str:
    from meshfilter.envoy import find_envoy

    out = subprocess.run([str(find_envoy()), "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version: \w+/(\d+\.\d+\.\d+)/", out)
    return m.group(1) if m else "(unknown version)"


if __name__ == "__main__":
    sys.exit(main())
