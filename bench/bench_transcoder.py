"""Benchmark of the gRPC-JSON transcoder area; writes the ``transcoder`` section of docs/benchmarks.md.

1. Generation time for a large descriptor set: every .proto shipped by googleapis-common-protos,
   compiled in-process (grpcio-tools' protoc), then rendered as an EnvoyFilter (base64 inlined,
   size-checked) — the time `meshfilter transcoder --proto ...` spends.
2. Request overhead of HTTP/JSON through the transcoder vs native gRPC through the same Envoy, in
   front of the landing example server. One load generator for both: h2load over h2c (2
   connections x 4 streams), a JSON ``GET /v1/talk/0/java`` vs a gRPC ``POST .../talk`` with a
   length-prefixed message, alternating over rounds. Envoy is pinned to core 0; h2load and the
   gRPC server share core 1. Reported: throughput, mean request time and Envoy's CPU time per
   request (utime+stime from /proc, minus its idle background rate). Needs h2load
   (``apt-get install nghttp2-client``).

    python bench/bench_transcoder.py [--rounds 3] [--requests 2000] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


from _report import median, write_section  # noqa: E402
from meshfilter.envoy.runner import ProcessBackend  # noqa: E402
from meshfilter.examples.landing import SERVICE, descriptor_set, messages  # noqa: E402
from meshfilter.transcoder.bootstrap import transcoder_bootstrap  # noqa: E402
from meshfilter.transcoder.compile import compile_protos, googleapis_include, googleapis_protos  # noqa: E402
from meshfilter.transcoder.descriptor import load_descriptor_set, select_services  # noqa: E402
from meshfilter.transcoder.envoyfilter import object_size, render_yaml, transcoder_envoyfilter  # noqa: E402
from meshfilter.util.ports import free_port  # noqa: E402
from meshfilter.util.proc import stop_process


def bench_generation(rounds: int) -> dict[str, Any]:
    protos = googleapis_protos()
    compile_s, render_s = [], []
    data, doc = b"", {}
    for _ in range(rounds):
        t0 = time.perf_counter()
        data = compile_protos(protos, [googleapis_include()])
        t1 = time.perf_counter()
        fds = load_descriptor_set(data)
        names = [s.full_name for s in select_services(fds)]
        doc = transcoder_envoyfilter(descriptor=data, services=names, version="1.22")
        render_yaml([doc], version="1.22")
        t2 = time.perf_counter()
        compile_s.append(t1 - t0)
        render_s.append(t2 - t1)
    return {"protos": len(protos), "files": len(load_descriptor_set(data).file), "descriptor_bytes": len(data),
            "envoyfilter_bytes": object_size(doc), "compile_s": median(compile_s), "render_s": median(render_s)}


def _h2load(args: list[str], n: int) -> dict[str, float]:
    """Run h2load pinned to core 1; returns mean request time (s) and throughput (req/s)."""
    if shutil.which("h2load") is None:
        raise SystemExit("bench_transcoder: h2load not found (hint: apt-get install nghttp2-client)")
    out = subprocess.run(["taskset", "-c", "1", "h2load", "-n", str(n), "-c", "2", "-m", "4", *args],
                         capture_output=True, text=True, check=True).stdout
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    rps = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out)
    if not (done and rps and mean) or int(done.group(2)) != n:
        raise SystemExit(f"bench_transcoder: h2load failed: {out[-500:]}")
    return {"rps": float(rps.group(1)), "mean_s": _seconds(mean.group(1))}


def _seconds(text: str) -> float:
    for unit, factor in (("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    raise ValueError(text)


def bench_requests(rounds: int, n: int, workdir: Path) -> dict[str, Any]:
    """h2load (h2c, core 1) -> Envoy (core 0) -> landing server (subprocess, core 1)."""
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-m", "meshfilter.examples.landing",
                               "serve", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    envoy = None
    try:
        assert server.stdout is not None
        server.stdout.readline()
        boot = transcoder_bootstrap(descriptor=descriptor_set(), services=[SERVICE], grpc_host="127.0.0.1",
                                    grpc_port=port)
        envoy = ProcessBackend().start(boot, cpu=0, log_level="warn")
        msg = messages().TalkRequest(data="0", meta="h2load").SerializeToString()
        frame = workdir / "talk.grpc"
        frame.write_bytes(b"\x00" + struct.pack(">I", len(msg)) + msg)  # one gRPC length-prefixed message
        variants = {
            "http": [envoy.url(path="/v1/talk/0/java")],
            "grpc": ["-d", str(frame), "-H", "content-type: application/grpc", "-H", "te: trailers",
                     envoy.url(path=f"/{SERVICE}/talk")],
        }
        _h2load(variants["http"], 200)  # warm up both paths
        _h2load(variants["grpc"], 200)
        c0, t0 = envoy.cpu_seconds(), time.perf_counter()
        time.sleep(5)
        idle_rate = (envoy.cpu_seconds() - c0) / (time.perf_counter() - t0)  # Envoy's background CPU/s
        res: dict[str, dict[str, list[float]]] = {v: {"rps": [], "mean": [], "cpu": []} for v in variants}
        for i in range(rounds):
            for v in (("http", "grpc") if i % 2 == 0 else ("grpc", "http")):
                c0, t0 = envoy.cpu_seconds(), time.perf_counter()
                r = _h2load(variants[v], n)
                busy = envoy.cpu_seconds() - c0 - idle_rate * (time.perf_counter() - t0)
                res[v]["rps"].append(r["rps"])
                res[v]["mean"].append(r["mean_s"])
                res[v]["cpu"].append(max(busy, 0.0) / n)
                print(f"round {i + 1}/{rounds} {v}: {r['rps']:.0f} req/s, mean {r['mean_s'] * 1e3:.2f} ms, "
                      f"{res[v]['cpu'][-1] * 1e6:.0f} us Envoy CPU/request", file=sys.stderr, flush=True)
        out: dict[str, Any] = {v: {"rps": median(x["rps"]), "latency_ms": median(x["mean"]) * 1e3,
                                   "envoy_cpu_us": median(x["cpu"]) * 1e6} for v, x in res.items()}
        out["idle_cpu_ms_per_s"] = idle_rate * 1e3
        return out
    finally:
        if envoy is not None:
            envoy.stop()
        stop_process(server)


_LOAD_NOTE = (" — the machine was shared and oversubscribed, so these figures (Envoy's CPU per request included:"
              " context switches and cache misses count) are far from an idle machine's; rerun there for real ratios")


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "n/a (gRPC below the tick resolution)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch docs/benchmarks.md")
    args = ap.parse_args()

    gen = bench_generation(args.rounds)
    print(f"generation: {gen}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-transcoder-") as tmp:
        req = bench_requests(args.rounds, args.requests, Path(tmp))
    h, g = req["http"], req["grpc"]
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    body = f"""## gRPC-JSON transcoder

Generation (median of {args.rounds}): all {gen['protos']} protos of googleapis-common-protos
({gen['files']} files with imports) compile in-process to a {gen['descriptor_bytes']:,}-byte descriptor set in
**{gen['compile_s'] * 1e3:.0f} ms**; selecting services and rendering the EnvoyFilter
({gen['envoyfilter_bytes']:,} bytes, base64 inlined) takes **{gen['render_s'] * 1e3:.0f} ms**.

Request overhead, `talk` through the same Envoy in front of the landing example server: h2load over h2c
(2 connections x 4 streams, {args.requests} requests per variant per round), {args.rounds} alternating rounds,
medians:

| variant | throughput | mean request time | Envoy CPU per request |
|---|---|---|---|
| HTTP/JSON `GET /v1/talk/0/java` (transcoded) | {h['rps']:.0f} req/s | {h['latency_ms']:.2f} ms | \
{h['envoy_cpu_us']:.0f} µs |
| native gRPC `POST /org.feuyeux.grpc.LandingService/talk` (passed through) | {g['rps']:.0f} req/s | \
{g['latency_ms']:.2f} ms | {g['envoy_cpu_us']:.0f} µs |
| ratio HTTP/JSON ÷ gRPC | {h['rps'] / g['rps']:.2f} | {h['latency_ms'] / g['latency_ms']:.2f} | \
{_ratio(h['envoy_cpu_us'], g['envoy_cpu_us'])} |

Envoy's CPU per request has its idle background CPU ({req['idle_cpu_ms_per_s']:.0f} ms/s, measured for 5 s before
the rounds) subtracted; /proc counts in 10 ms ticks, so it is coarse. Throughput and request time are bounded by
the Python gRPC server (sharing core 1 with h2load); Envoy's CPU per request (Envoy alone on core 0) is the
figure that isolates the cost of transcoding JSON <-> protobuf. Load average at the end of the run:
{load:.1f} on {cores} cores{_LOAD_NOTE if load > 2 * cores else ""}.
"""
    print(body)
    if not args.no_write:
        write_section("transcoder", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
