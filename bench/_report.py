"""Write one benchmark's section into docs/benchmarks.md, between markers, leaving the others alone.

Each bench script owns one section ``<!-- bench:NAME -->`` ... ``<!-- /bench:NAME -->``; running it
rewrites only that section (atomically), with the command that produced it and the machine it ran on.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Each section below is written by one script under `bench/`, with the command that produced it.
Variants are measured side by side in one run, alternating over rounds, and reported as medians and
as ratios: these 2-core machines are noisy (about ±0.1 on throughput ratios). Envoy and the load
generator are pinned to separate cores with `taskset`, and Envoy's CPU time per request
(utime+stime from /proc) is given beside throughput as the steadier figure.
"""


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    py = platform.python_version()
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}, Python {py}"


def write_section(name: str, body: str, *, command: str | None = None) -> None:
    cmd = command or "python " + " ".join(shlex.quote(a) for a in sys.argv)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = (f"<!-- bench:{name} -->\n{body.rstrip()}\n\nProduced by `{cmd}` on {stamp} "
               f"({machine()}).\n<!-- /bench:{name} -->")
    text = DOC.read_text() if DOC.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _m: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    tmp = DOC.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, DOC)


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
