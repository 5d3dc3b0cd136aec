"""Side-by-side Envoy benchmarks of HTTP filter variants: one table of variants, one runner, one report.

A bench script lists its variants as :class:`Variant` entries (adding a variant is adding one entry)
and calls :func:`run`, then :func:`report`. The rules of docs/benchmarks.md are applied here, once:

* one Envoy per variant (``--concurrency 1``), all started up front, each pinned to CPU 0 with
  ``taskset``; the load generator (``wrk -t1``) pinned to CPU 1;
* variants alternated: every round runs each variant once, the order rotated each round;
* medians over rounds; Envoy CPU µs per request from /proc (utime+stime over the run divided by the
  requests served); throughput and CPU ratios to the baseline variant;
* the load average is recorded before and after, with the CPU time other processes used during the
  run (from /proc/stat, less Envoy's and wrk's own); a table measured while the machine was busy
  (load average above :data:`MAX_LOAD` before the run, or others using more than
  :data:`MAX_OTHERS` of the machine) is marked NOT A RESULT and is not written to
  docs/benchmarks.md unless asked for.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import median  # noqa: E402
from meshfilter.envoy import bootstrap as bs  # noqa: E402
from meshfilter.envoy.runner import EnvoyProcess, ProcessBackend  # noqa: E402

MAX_LOAD = 1.5  # 1-minute load average above which a run is not a result (docs/benchmarks.md)
MAX_OTHERS = 0.10  # share of the machine's CPU time other processes may use during the run
ENVOY_CPU, LOAD_CPU = 0, 1


@dataclass(frozen=True)
class Variant:
    """One row: the HTTP filters of its Envoy (none for the baseline), what it shows, and the Wasm
    module it runs (its size is reported). ``filters`` may be a callable, built when the run starts."""

    name: str
    filters: Sequence[dict[str, Any]] | Callable[[], Sequence[dict[str, Any]]]
    shows: str = ""
    module: bytes | None = None


@dataclass
class Run:
    """Everything one invocation measured."""

    variants: list[Variant]
    rounds: int
    seconds: int
    connections: int
    rps: dict[str, list[float]] = field(default_factory=dict)
    cpu_us: dict[str, list[float]] = field(default_factory=dict)
    load_before: float = 0.0
    load_after: float = 0.0
    others: float = 0.0  # share of all CPU time used by other processes during the rounds
    served: dict[str, int] = field(default_factory=dict)  # requests each Envoy served in the rounds
    rss_mib: dict[str, float] = field(default_factory=dict)  # each Envoy's RSS after the rounds

    @property
    def quiet(self) -> bool:
        return self.load_before <= MAX_LOAD and self.others <= MAX_OTHERS


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _busy_seconds() -> float:
    """Busy CPU time of the whole machine (all CPUs) so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def wrk(url: str, *, seconds: int, connections: int, headers: Sequence[tuple[str, str]] = ()) -> tuple[float, int]:
    """(requests/second, requests) from one ``wrk -t1`` run pinned to the load generator's CPU."""
    cmd = ["taskset", "-c", str(LOAD_CPU), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    for k, v in headers:
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"non-2xx answers from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    n = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, n


def run(variants: Sequence[Variant], *, rounds: int, seconds: int, connections: int,
        headers: Sequence[tuple[str, str]] = (), path: str = "/",
        log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> Run:
    """Start one Envoy per variant, then measure them in alternation; every Envoy is stopped after."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    # SIGTERM (e.g. from `timeout`) must unwind through `finally` so every Envoy started here stops
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = Run(list(variants), rounds, seconds, connections, load_before=loadavg())
    backend = ProcessBackend()
    envoys: dict[str, EnvoyProcess] = {}
    try:
        for v in variants:
            filters = list(v.filters() if callable(v.filters) else v.filters)
            envoys[v.name] = backend.start(bs.filter_bootstrap(filters), name="bench-" + re.sub(r"\W+", "-", v.name),
                                           concurrency=1, log_level="warning", cpu=ENVOY_CPU)
            result.rps[v.name], result.cpu_us[v.name], result.served[v.name] = [], [], 0
        for env in envoys.values():  # warm-up: VM start, JIT tiers, connection setup
            wrk(env.url("main", path), seconds=1, connections=connections, headers=headers)
        names = list(envoys)
        busy0, own0, t0 = _busy_seconds(), _children_cpu() + sum(e.cpu_seconds() for e in envoys.values()), time.time()
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                env = envoys[name]
                c0 = env.cpu_seconds()
                rate, n = wrk(env.url("main", path), seconds=seconds, connections=connections, headers=headers)
                result.cpu_us[name].append((env.cpu_seconds() - c0) / max(n, 1) * 1e6)
                result.rps[name].append(rate)
                result.served[name] += n
                log(f"round {r + 1}/{rounds} {name:40s} {rate:9.0f} req/s {result.cpu_us[name][-1]:7.2f} µs CPU/req")
        own = _children_cpu() + sum(e.cpu_seconds() for e in envoys.values()) - own0
        wall = time.time() - t0
        result.others = max(0.0, (_busy_seconds() - busy0 - own) / (wall * (os.cpu_count() or 1)))
        result.rss_mib = {name: env.rss_bytes() / 2**20 for name, env in envoys.items()}
    finally:
        for env in envoys.values():
            env.stop()
    result.load_after = loadavg()
    return result


def table(result: Run, baseline: str) -> list[str]:
    """The markdown table: medians, ratios and added CPU against ``baseline``."""
    base_rps, base_cpu = median(result.rps[baseline]), median(result.cpu_us[baseline])
    rows = ["| variant | shows | req/s | × baseline | Envoy CPU µs/req | added µs/req | CPU × baseline | module "
            "| RSS after |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for v in result.variants:
        r, c = median(result.rps[v.name]), median(result.cpu_us[v.name])
        size = f"{len(v.module):,} B" if v.module else ""
        rss = (f"{result.rss_mib[v.name]:.0f} MiB / {result.served[v.name] // 1000}k req"
               if v.name in result.rss_mib else "")
        rows.append(f"| {v.name} | {v.shows} | {r:,.0f} | {r / base_rps:.2f} | {c:.2f} | {c - base_cpu:+.2f} "
                    f"| {c / base_cpu:.2f} | {size} | {rss} |")
    return rows


def conditions(result: Run) -> str:
    cores = os.cpu_count() or 1
    text = (f"Load average (1 min) {result.load_before:.2f} before the run, {result.load_after:.2f} after (Envoy and "
            f"wrk themselves add about 2 while they run); other processes used {result.others:.0%} of the "
            f"machine's {cores} cores during the rounds.")
    if not result.quiet:
        text = (f"**NOT A RESULT: the machine was busy (load average above {MAX_LOAD} before the run, or other "
                f"processes above {MAX_OTHERS:.0%} of the CPU); rerun on a quiet machine.** " + text)
    return text


def method(result: Run, *, path: str = "/") -> str:
    return (f"One Envoy per variant, `--concurrency 1`, pinned to CPU {ENVOY_CPU} (`taskset`); `wrk -t1 "
            f"-c{result.connections} -d{result.seconds}s` pinned to CPU {LOAD_CPU}; a direct-response route "
            f"(`{path}`); {result.rounds} rounds, each running every variant once in an order rotated each "
            "round; medians. *Envoy CPU µs/req* is Envoy's utime+stime (/proc) over a run divided by the "
            "requests it served; *added* is that minus the baseline's.")


def should_write(result: Run, *, write: bool, write_noisy: bool) -> bool:
    if not write:
        return False
    if result.quiet or write_noisy:
        return True
    print("docs/benchmarks.md left alone: this run is not a result (see the line above the table); "
          "pass --write-noisy to write it anyway, marked as such.", file=sys.stderr)
    return False


def add_arguments(ap: Any, *, rounds: int, seconds: int, connections: int) -> None:
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--seconds", type=int, default=seconds, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=connections)
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="run only variants whose name contains NAME (repeatable; the baseline always runs)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    ap.add_argument("--write-noisy", action="store_true",
                    help="write docs/benchmarks.md even when the machine was busy (the section says so)")


def select(variants: Sequence[Variant], only: Sequence[str], baseline: str) -> list[Variant]:
    if not only:
        return list(variants)
    return [v for v in variants if v.name == baseline or any(o in v.name for o in only)]
