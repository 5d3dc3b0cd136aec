"""Benchmark of the gRPC-JSON transcoder area; writes the ``transcoder`` section of docs/benchmarks.md.

1. Generation time for a large descriptor set: every .proto shipped by googleapis-common-protos,
   compiled in-process (grpcio-tools' protoc), then rendered as an EnvoyFilter (base64 inlined,
   size-checked) — the time `meshfilter transcoder --proto ...` spends.
2. Request overhead of HTTP/JSON through the transcoder vs native gRPC through the same Envoy, in
   front of the landing example server. Both variants use a closed-loop client in this process
   (requests keep-alive session vs a grpcio stub, one request in flight), alternating over rounds.
   Envoy is pinned to core 0; the client and the gRPC server share core 1. Reported: median
   latency per request and Envoy's CPU time per request (utime+stime from /proc).

    python bench/bench_transcoder.py [--rounds 3] [--requests 1000] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests  # noqa: E402

from _report import median, write_section  # noqa: E402
from meshfilter.envoy.runner import ProcessBackend  # noqa: E402
from meshfilter.examples.landing import SERVICE, LandingClient, descriptor_set  # noqa: E402
from meshfilter.transcoder.bootstrap import transcoder_bootstrap  # noqa: E402
from meshfilter.transcoder.compile import compile_protos, googleapis_include, googleapis_protos  # noqa: E402
from meshfilter.transcoder.descriptor import load_descriptor_set, select_services  # noqa: E402
from meshfilter.transcoder.envoyfilter import object_size, render_yaml, transcoder_envoyfilter  # noqa: E402
from meshfilter.util.ports import free_port  # noqa: E402


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


def _http_round(url: str, n: int) -> list[float]:
    out = []
    with requests.Session() as s:
        for _ in range(n):
            t0 = time.perf_counter()
            r = s.get(url, timeout=10)
            out.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
    return out


def _grpc_round(client: LandingClient, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.talk("0")
        out.append(time.perf_counter() - t0)
        assert r.status == 200
    return out


def bench_requests(rounds: int, n: int) -> dict[str, Any]:
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-m", "meshfilter.examples.landing",
                               "serve", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    envoy = None
    try:
        assert server.stdout is not None
        server.stdout.readline()
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {1})
        boot = transcoder_bootstrap(descriptor=descriptor_set(), services=[SERVICE], grpc_host="127.0.0.1",
                                    grpc_port=port)
        envoy = ProcessBackend().start(boot, cpu=0, log_level="warn")
        url = envoy.url(path="/v1/talk/0/java")
        client = LandingClient(envoy.url().removeprefix("http://"))
        client.wait_ready(20)
        _http_round(url, 100)  # warm up both paths
        _grpc_round(client, 100)
        c0, t0 = envoy.cpu_seconds(), time.perf_counter()
        time.sleep(3)
        idle_rate = (envoy.cpu_seconds() - c0) / (time.perf_counter() - t0)  # Envoy's background CPU/s
        lat: dict[str, list[float]] = {"http": [], "grpc": []}
        cpu: dict[str, list[float]] = {"http": [], "grpc": []}
        for i in range(rounds):
            for variant in (("http", "grpc") if i % 2 == 0 else ("grpc", "http")):
                c0, t0 = envoy.cpu_seconds(), time.perf_counter()
                xs = _http_round(url, n) if variant == "http" else _grpc_round(client, n)
                busy = envoy.cpu_seconds() - c0 - idle_rate * (time.perf_counter() - t0)
                cpu[variant].append(max(busy, 0.0) / n)
                lat[variant].append(median(xs))
        client.close()
        out: dict[str, Any] = {v: {"latency_ms": median(lat[v]) * 1e3, "envoy_cpu_us": median(cpu[v]) * 1e6}
                               for v in lat}
        out["idle_cpu_ms_per_s"] = idle_rate * 1e3
        return out
    finally:
        if envoy is not None:
            envoy.stop()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch docs/benchmarks.md")
    args = ap.parse_args()

    gen = bench_generation(args.rounds)
    req = bench_requests(args.rounds, args.requests)
    h, g = req["http"], req["grpc"]
    body = f"""## gRPC-JSON transcoder

Generation (median of {args.rounds}): all {gen['protos']} protos of googleapis-common-protos
({gen['files']} files with imports) compile in-process to a {gen['descriptor_bytes']:,}-byte descriptor set in
**{gen['compile_s'] * 1e3:.0f} ms**; selecting services and rendering the EnvoyFilter
({gen['envoyfilter_bytes']:,} bytes, base64 inlined) takes **{gen['render_s'] * 1e3:.0f} ms**.

Request overhead, `talk` through the same Envoy (landing example server), {args.requests} sequential requests
per variant per round, {args.rounds} alternating rounds, medians:

| variant | latency per request | Envoy CPU per request |
|---|---|---|
| HTTP/JSON `GET /v1/talk/0/java` (transcoded) | {h['latency_ms']:.2f} ms | {h['envoy_cpu_us']:.0f} µs |
| native gRPC `/org.feuyeux.grpc.LandingService/talk` (passed through) | {g['latency_ms']:.2f} ms | \
{g['envoy_cpu_us']:.0f} µs |
| ratio HTTP/JSON ÷ gRPC | {h['latency_ms'] / g['latency_ms']:.2f} | {h['envoy_cpu_us'] / g['envoy_cpu_us']:.2f} |

Envoy's CPU per request has its idle background CPU ({req['idle_cpu_ms_per_s']:.0f} ms/s, measured for 3 s before
the rounds) subtracted. Latency includes the Python client and the Python gRPC server (both on core 1),
which dominate it; Envoy's CPU per request (Envoy alone on core 0) isolates the cost of transcoding JSON <-> protobuf.
"""
    print(body)
    if not args.no_write:
        write_section("transcoder", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
