"""Filters written in Python (meshfilter.sdk): module sizes, script sizes and build times. No Envoy.

For every example under ``meshfilter.sdk.examples`` (and the scaffold's filter): the size of the
proxy-wasm module (``meshfilter wasm build python``, ABI 0.2.1 and 0.1.0) and of the Lua script
(``meshfilter lua build``), and how long a build takes: check (``ast`` -> IR), WAT generation, and
``wasmtime.wat2wasm``, median of ``--repeat`` builds each. Beside them the hand-written
propagate-header module. Targets (issue 11): the propagate-header example at most 4 KB; a build
under 100 ms. Envoy CPU per request is in bench/bench_wasm.py ("propagate-header from Python") and
bench/bench_tagging.py ("tagging example from Python").

Writes the ``sdk`` section of docs/benchmarks.md (not with ``--no-write``).

    python bench/bench_sdk.py [--repeat 21] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import median, write_section  # noqa: E402
from meshfilter.lua.python_filter import compile_program as compile_lua  # noqa: E402
from meshfilter.sdk import examples  # noqa: E402
from meshfilter.sdk.checker import check_file  # noqa: E402
from meshfilter.sdk.scaffold import scaffold  # noqa: E402
from meshfilter.wasm import build_propagate_header  # noqa: E402
from meshfilter.wasm.codegen import assemble  # noqa: E402
from meshfilter.wasm.python_filter import render_python_filter  # noqa: E402

SIZE_TARGET, TIME_TARGET_MS = 4096, 100.0
T = TypeVar("T")


def timed(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """(median milliseconds, the last result) of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return median(times) * 1000, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--repeat", type=int, default=21, help="builds per measurement (median)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        canary = Path(tmp) / "canary.py"
        canary.write_text(scaffold("canary")["filter.py"])
        sources = [(name, examples.path(name), examples.EXAMPLES[name][2]) for name in examples.EXAMPLES]
        sources.append(("scaffold (meshfilter new)", canary, {"header": "x-canary-tag"}))
        rows = ["| filter | Wasm bytes (0.2.1) | Wasm bytes (0.1.0) | Lua bytes | check ms | WAT ms | assemble ms "
                "| build ms (total) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        worst, ph_size = 0.0, 0
        for name, path, config in sources:
            check_ms, program = timed(lambda p=path: check_file(p), args.repeat)
            wat_ms, wat = timed(lambda pr=program: render_python_filter(pr), args.repeat)
            asm_ms, module = timed(lambda w=wat: assemble(w), args.repeat)
            total_ms, _ = timed(lambda p=path: assemble(render_python_filter(check_file(p))), args.repeat)
            abi01 = assemble(render_python_filter(program, abi="0.1.0"))
            lua = compile_lua(program, config)
            worst = max(worst, total_ms)
            rows.append(f"| {name} | {len(module):,} | {len(abi01):,} | {len(lua.encode()):,} | {check_ms:.1f} | "
                        f"{wat_ms:.1f} | {asm_ms:.1f} | {total_ms:.1f} |")
            if name == "propagate-header":
                ph_size = len(module)
    hand_ms, hand = timed(build_propagate_header, args.repeat)
    body = "\n".join([
        "## Filters written in Python: sizes and build times (`bench/bench_sdk.py`)",
        "",
        f"Median of {args.repeat} builds each, in one process (warm imports).",
        "",
        *rows,
        f"| hand-written propagate-header (`wasm build propagate-header`) | {len(hand):,} | | | | | | "
        f"{hand_ms:.1f} |",
        "",
        f"- propagate-header from Python: {ph_size:,} bytes (target at most {SIZE_TARGET:,}: "
        f"{'met' if ph_size <= SIZE_TARGET else 'NOT met'}).",
        f"- Slowest build: {worst:.1f} ms (target under {TIME_TARGET_MS:.0f} ms: "
        f"{'met' if worst < TIME_TARGET_MS else 'NOT met'}).",
    ])
    print(body)
    if not args.no_write:
        write_section("sdk", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
