"""Throughput of the proxy-wasm host emulator (requests and module callbacks per CPU second).

Variants, measured side by side and alternated over rounds (medians reported):

* ``propagate-0.2.1`` / ``propagate-0.1.0`` -- the propagate-header module (one callback per request;
  replace header + clear_route_cache host calls);
* ``tag-rules-1`` / ``tag-rules-20`` -- header-tagging modules with 1 and 20 rules (one callback,
  get_header_map_pairs, an allocation, replace + clear_route_cache).

CPU time (``time.process_time``) is reported beside wall time: on a shared 2-core machine wall time
is mostly other people's load. Then the memory check: ``--memory-requests`` (default 100,000) requests
through propagate-0.2.1 in one emulator, recording the process's RSS and the module's linear memory
every 10,000 requests (the records are cleared at each checkpoint: they are the test's data, kept until
``clear_records()``); memory is flat when neither grows after the first checkpoint.

Run (pinned, on a quiet machine): ``taskset -c 1 python bench/bench_emulator.py --requests 20000 --rounds 5``.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import median, write_section  # noqa: E402
from meshfilter.filters import tagging as t  # noqa: E402
from meshfilter.wasm import HostEmulator, build_propagate_header, build_tag_rules  # noqa: E402

CONFIG = '{"head_tag_name": "route-v", "head_tag_value": "hello2v2"}'
HEADERS = [(":method", "GET"), (":path", "/"), (":authority", "example"), ("user-agent", "curl/8.5"),
           ("route-v", "old")]


def twenty_rules() -> t.RuleSet:
    rules = [t.make_rule(i, header="user-agent", kind="contains", value=f"Device{i:02d}",
                         set={"x-asm-prefer-tag": f"version-{i}"}) for i in range(20)]
    return t.make_ruleset(rules, {"x-asm-prefer-tag": "version-base"})


def variants() -> dict[str, Callable[[], HostEmulator]]:
    return {
        "propagate-0.2.1": lambda: HostEmulator(build_propagate_header(abi="0.2.1"),
                                                root_id="propaganda_filter_root", plugin_config=CONFIG),
        "propagate-0.1.0": lambda: HostEmulator(build_propagate_header(abi="0.1.0"),
                                                root_id="propaganda_filter_root", plugin_config=CONFIG),
        "tag-rules-1": lambda: HostEmulator(build_tag_rules(t.seed_ruleset())),
        "tag-rules-20": lambda: HostEmulator(build_tag_rules(twenty_rules())),
    }


def measure(emu: HostEmulator, n: int) -> tuple[float, float, float]:
    """(requests per CPU second, callbacks per CPU second, requests per wall second)."""
    calls0 = emu.calls
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        emu.run_request(HEADERS)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    emu.clear_records()
    return n / cpu, (emu.calls - calls0) / cpu, n / wall


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_run(n: int, every: int = 10_000) -> list[tuple[int, int, int]]:
    """(requests so far, RSS bytes, linear memory bytes) at each checkpoint."""
    emu = variants()["propagate-0.2.1"]()
    assert emu.start(), emu.logs
    points = []
    done = 0
    while done < n:
        for _ in range(min(every, n - done)):
            emu.run_request(HEADERS)
        done += min(every, n - done)
        emu.clear_records()
        gc.collect()
        points.append((done, rss_bytes(), emu.memory_size()))
    return points


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5000, help="requests per variant per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory-requests", type=int, default=100_000,
                    help="requests in the memory check (0 skips it)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not update docs/benchmarks.md")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    emus = {name: make() for name, make in variants().items()}
    for emu in emus.values():
        assert emu.start(), emu.logs
        emu.run_request(HEADERS)  # warm up
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in emus}
    for _ in range(args.rounds):
        for name, emu in emus.items():
            results[name].append(measure(emu, args.requests))
    lines = ["## proxy-wasm host emulator", "",
             f"{args.requests} requests per variant per round, {args.rounds} rounds, medians. One request = "
             "context create, request headers, done (only the callbacks the module exports are called).", "",
             "| module | requests / CPU s | callbacks / CPU s | requests / wall s |", "| --- | ---: | ---: | ---: |"]
    for name, rs in results.items():
        rq, cb, wall = (median([r[i] for r in rs]) for i in range(3))
        lines.append(f"| {name} | {rq:,.0f} | {cb:,.0f} | {wall:,.0f} |")
    lines += ["", f"Load average during the run: {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at the end "
              f"({os.cpu_count()} cores): with other work on the machine even CPU-time figures vary by 2x or "
              "more between runs; compare variants within one run only.",
              "", "The emulator calls into wasmtime through its unchecked C API (raw value arrays, signatures "
              "checked once); the remaining cost is Python: ctypes transitions and the header-map bookkeeping "
              "of each host call."]
    if args.memory_requests:
        points = memory_run(args.memory_requests)
        first, last = points[0], points[-1]
        lines += ["", f"Memory over {last[0]:,} requests (propagate-0.2.1, one emulator): RSS "
                  f"{first[1] / 2**20:.1f} MiB after {first[0]:,}, {last[1] / 2**20:.1f} MiB after {last[0]:,} "
                  f"({(last[1] - first[1]) / 2**10:+,.0f} KiB); linear memory {first[2]:,} -> {last[2]:,} bytes.", "",
                  "| requests | RSS (MiB) | linear memory (bytes) |", "| ---: | ---: | ---: |"]
        lines += [f"| {n:,} | {rss / 2**20:.1f} | {mem:,} |" for n, rss, mem in points]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("wasm-emulator", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
