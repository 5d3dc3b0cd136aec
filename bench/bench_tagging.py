"""Overhead of the header-tagging filter in a real Envoy: Lua vs Wasm, 1 rule vs 20 rules.

Variants, each its own Envoy (concurrency 1, pinned to CPU 0 with taskset), all started once and
measured in alternation over rounds; wrk runs pinned to CPU 1 against a direct-response route (no
upstream, so the filter is what differs):

* ``none``      -- no filter (baseline)
* ``lua-1``     -- the seed's rule (user-agent contains iPhone13) as generated Lua
* ``lua-20``    -- 19 non-matching rules, then the seed rule (every rule is evaluated)
* ``wasm-1`` / ``wasm-20`` -- the same rule sets as Wasm (``meshfilter.wasm.build_tag_rules``)

Reported: median requests/s and its ratio to ``none``; Envoy CPU time per request (utime+stime from
/proc over the run divided by requests) and the filter's extra CPU per request over ``none``.

    python bench/bench_tagging.py [--duration 5] [--rounds 3] [--connections 8] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import median, write_section  # noqa: E402
from meshfilter.envoy.bootstrap import filter_bootstrap, wasm_code, wasm_filter  # noqa: E402
from meshfilter.envoy.runner import EnvoyProcess, ProcessBackend  # noqa: E402
from meshfilter.filters import tagging as t  # noqa: E402
from meshfilter.k8s.lua_envoyfilter import lua_http_filter  # noqa: E402
from meshfilter.lua.codegen import compile_rules  # noqa: E402
from meshfilter.wasm import build_tag_rules  # noqa: E402

UA = "Mozilla/5.0 (iPhone13,2; CPU iPhone OS 15_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


def ruleset(n: int) -> t.RuleSet:
    """``n - 1`` rules that do not match the benchmark request, then the seed rule."""
    kinds = ["contains", "prefix", "suffix", "exact"]
    rules = [t.make_rule(i, name=f"miss-{i}", header="user-agent" if i % 2 == 0 else f"x-h{i}",
                         kind=kinds[i % 4], value=f"Android-{i}", set=[("x-asm-prefer-tag", f"v{i}")])
             for i in range(n - 1)]
    rules.append(t.make_rule(n - 1, name="iphone13", header="user-agent", kind="contains", value="iPhone13",
                             set=[("x-asm-prefer-tag", "version-gray")]))
    return t.make_ruleset(rules, [("x-asm-prefer-tag", "version-base")])


def wasm_http_filter(rs: t.RuleSet) -> dict[str, Any]:
    module = build_tag_rules(rs)
    return wasm_filter(code=wasm_code(inline=module), configuration="", root_id="", vm_id="tag-rules",
                       name="tag-rules")


def variants() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"none": []}
    for n in (1, 20):
        out[f"lua-{n}"] = [lua_http_filter(compile_rules(ruleset(n)))]
        out[f"wasm-{n}"] = [wasm_http_filter(ruleset(n))]
    return out


def wrk(url: str, *, duration: int, connections: int) -> tuple[float, int]:
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-H", f"user-agent: {UA}", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx responses from {url}:\n{out}")
    return rps, total


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--no-write", action="store_true", help="print only, do not update docs/benchmarks.md")
    args = ap.parse_args()

    load_before = loadavg()
    backend = ProcessBackend()
    envoys: dict[str, EnvoyProcess] = {}
    rps: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    try:
        for name, filters in variants().items():
            envoys[name] = backend.start(filter_bootstrap(filters), name=f"bench-{name}", cpu=0,
                                         log_level="warning")
            rps[name], cpu[name] = [], []
        for env in envoys.values():  # warm-up (JIT, VM start, connection pools)
            wrk(env.url("main", "/"), duration=1, connections=args.connections)
        for rnd in range(args.rounds):
            order = list(envoys) if rnd % 2 == 0 else list(reversed(envoys))
            for name in order:
                env = envoys[name]
                c0 = env.cpu_seconds()
                r, total = wrk(env.url("main", "/"), duration=args.duration, connections=args.connections)
                c1 = env.cpu_seconds()
                rps[name].append(r)
                cpu[name].append((c1 - c0) / max(total, 1) * 1e6)
                print(f"round {rnd + 1} {name:8s} {r:10.0f} req/s {cpu[name][-1]:7.1f} us CPU/req", flush=True)
                time.sleep(0.2)
    finally:
        for env in envoys.values():
            env.stop()

    load_after = loadavg()
    base_rps, base_cpu = median(rps["none"]), median(cpu["none"])
    lines = ["### Header tagging: Lua vs Wasm filter overhead", "",
             "Request: `user-agent` matching only the last rule (so all rules run); direct-response route, "
             f"Envoy concurrency 1 on CPU 0, `wrk -t1 -c{args.connections} -d{args.duration:g}s` on CPU 1, "
             f"{args.rounds} alternating rounds, medians.", "",
             "| variant | req/s | ratio to no filter | Envoy CPU µs/req | filter CPU µs/req over no filter |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name in envoys:
        r, c = median(rps[name]), median(cpu[name])
        lines.append(f"| {name} | {r:,.0f} | {r / base_rps:.2f} | {c:.1f} | {c - base_cpu:+.1f} |")
    cores = os.cpu_count() or 1
    lines += ["", f"Load average (1 min) before/after the run: {load_before:.1f} / {load_after:.1f} on {cores} cores."]
    if max(load_before, load_after) > cores:
        lines.append("**The machine was overloaded by other work during this run: these numbers are not "
                     "reliable; re-run on an idle machine.**")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("tagging", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
