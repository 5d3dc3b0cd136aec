"""Container backend vs process backend: startup-to-ready time and request throughput.

Variants, measured side by side in one run and alternated over rounds:
  process         Envoy as a child process
  container-host  Envoy in a container, host networking (the default)
  container-bridge  Envoy in a container, bridge networking with published ports

Startup-to-ready: wall time of ``backend.start(...)`` (create + start + admin /ready) for a direct-response
bootstrap. Throughput: ``taskset -c 1 wrk`` against the direct-response listener, Envoy pinned to core 0
(``cpu=0``), plus Envoy's CPU time per request (utime+stime from /proc; the container's Envoy is a host
process too). Medians over rounds; ratios against the process backend.

    python bench/bench_container.py [--rounds 5] [--tp-rounds 3] [--duration 5] [--no-write]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import median, write_section  # noqa: E402
from meshfilter.envoy import bootstrap as b  # noqa: E402
from meshfilter.envoy.container import ContainerBackend  # noqa: E402
from meshfilter.envoy.engine import engine_client, engine_name, engine_unavailable_reason  # noqa: E402
from meshfilter.envoy.runner import ProcessBackend  # noqa: E402

BODY = "x" * 64


def _bootstrap() -> dict[str, Any]:
    return b.bootstrap(listeners=[b.http_listener("main", 0, routes=[b.direct_response_route(BODY)])])


def _wrk(url: str, duration: int, connections: int = 16) -> float:
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", url],
                         capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"wrk output not understood: {out[-500:]}")
    return float(m.group(1))


def _requests(envoy: Any) -> int:
    """Requests served by the ``main`` listener's connection manager (stat prefix = listener name)."""
    return int(envoy.stats("http.main.downstream_rq_total").get("http.main.downstream_rq_total", 0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=5, help="startup rounds per variant")
    ap.add_argument("--tp-rounds", type=int, default=3, help="throughput rounds per variant")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = ap.parse_args()

    reason = engine_unavailable_reason()
    if reason:
        print(f"no container engine: {reason}", file=sys.stderr)
        return 1
    client = engine_client()
    engine = engine_name(client)
    t0 = time.monotonic()
    host_be = ContainerBackend(client=client)
    image = host_be.image()
    image_s = time.monotonic() - t0
    bridge_be = ContainerBackend(client=client, network="bridge", cleanup=False)
    bridge_be._image = image
    variants: dict[str, Any] = {"process": ProcessBackend(), "container-host": host_be,
                                "container-bridge": bridge_be}

    startup: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(args.rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            t = time.monotonic()
            envoy = variants[name].start(_bootstrap(), name=f"bench-{name}", timeout=120)
            startup[name].append(time.monotonic() - t)
            envoy.stop()
        print(f"startup round {r + 1}: " + ", ".join(f"{n} {startup[n][-1]:.2f}s" for n in variants),
              file=sys.stderr)

    rps: dict[str, list[float]] = {v: [] for v in variants}
    cpu_us: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(args.tp_rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            with variants[name].start(_bootstrap(), name=f"bench-{name}", cpu=0, timeout=120) as envoy:
                url = envoy.url("main", "/")
                _wrk(url, 1)  # warm-up
                c0, n0 = envoy.cpu_seconds(), _requests(envoy)
                rps[name].append(_wrk(url, args.duration))
                c1, n1 = envoy.cpu_seconds(), _requests(envoy)
                cpu_us[name].append((c1 - c0) / max(1, n1 - n0) * 1e6)
        print(f"throughput round {r + 1}: " + ", ".join(f"{n} {rps[n][-1]:.0f} rps" for n in variants),
              file=sys.stderr)

    base_start, base_rps, base_cpu = median(startup["process"]), median(rps["process"]), median(cpu_us["process"])
    rows = ["| backend | startup-to-ready (median) | × process | requests/s (median) | × process "
            "| Envoy CPU µs/request | × process |",
            "|---|---|---|---|---|---|---|"]
    for name in variants:
        s, q, c = median(startup[name]), median(rps[name]), median(cpu_us[name])
        rows.append(f"| {name} | {s:.2f} s | {s / base_start:.2f} | {q:,.0f} | {q / base_rps:.2f} "
                    f"| {c:.1f} | {c / base_cpu:.2f} |")
    body = (
        f"### Container backend vs process backend ({engine}, image `{image.ref}`)\n\n"
        + "\n".join(rows)
        + f"\n\nStartup: {args.rounds} rounds per variant (create + start + admin `/ready`, direct-response "
        f"bootstrap). Throughput: {args.tp_rounds} rounds of `taskset -c 1 wrk -t1 -c16 -d{args.duration}s` "
        "against a direct response (64-byte body), Envoy pinned to core 0, `--concurrency 1`. "
        "The image was " + ("built" if image.built else "already cached") + f" ({image_s:.1f} s before the "
        "runs). Container startup includes the engine's create/start API calls and the runtime (runc) "
        "on top of Envoy's own init; bridge networking adds the published-port forwarding to the data "
        "path, host networking uses the host's sockets directly. Load average when the run ended: "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work on the machine makes the "
        "figures noisy; compare the ratios).\n"
    )
    if args.no_write:
        print(body)
    else:
        write_section("container", body)
        print(body)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
