"""Push + pull of a 1 MB and a 20 MB Wasm module: meshfilter's client vs oras-py, side by side in one run.

Both variants do what a user's command does, against the same local docker-registry:

* meshfilter: ``meshfilter oras push REF FILE --root-id ...`` then ``meshfilter oras pull REF -o OUT``: read the
  module file (hashing each block as it is read), build the ASM artifact (config runtime-config.json, one wasm
  layer), ping, HEAD, upload (monolithic up to 16 MiB, PATCH chunks of 16 MiB above), PUT the manifest; resolve
  the manifest, stream the layer into OUT's temp file with its digest checked as it arrives, then fsync + rename;
  the library calls the CLI makes;
* oras-py: ``OrasClient.push(files=[FILE:<wasm layer type>], manifest_config=runtime-config.json:<type>)``
  then ``OrasClient.pull(outdir=...)``.

Every round uses fresh module bytes, so no blob is skipped; variants alternate within each round (round 0
warms both up and is not counted). The registry keeps its storage in RAM (``/dev/shm`` when there is one):
a remote registry's disk is not the client's, and a local one on the same disk would make every fsync of
the client's output (meshfilter's atomic write) also wait for the registry's own dirty blobs.
The client runs pinned to one core and the registry to the other
(``sched_setaffinity``, like ``taskset``). Reported: medians of wall time and of the client's CPU time
(``time.process_time``: the steadier figure), and the ratios meshfilter/oras-py (target: <= 1.0 at 20 MB).

Run: python bench/bench_oras.py [--rounds N] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import oras.client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import median, write_section  # noqa: E402
from meshfilter.oras.client import RegistryClient  # noqa: E402
from meshfilter.oras.formats import WASM_CONFIG, WASM_LAYER, build_artifact, check_module  # noqa: E402
from meshfilter.oras.runtime_config import build_runtime_config  # noqa: E402
from meshfilter.oras.server import RegistryServer  # noqa: E402
from meshfilter.util.digest import read_with_digest  # noqa: E402

RC = build_runtime_config(["propaganda_filter_root"]).to_bytes()
SIZES = (("1 MB", 1 << 20), ("20 MB", 20 << 20))
VARIANTS = ("meshfilter", "oras-py")


def module(size: int) -> bytes:
    return b"\0asm\x01\0\0\0" + os.urandom(size - 8)


def run_meshfilter(host: str, src: Path, out: Path, tag: str) -> None:
    data, digest = read_with_digest(src)  # as `oras push`: read and hash in one pass
    check_module(data, where=str(src))
    art = build_artifact("asm", data, runtime_config=RC, title=src.name, module_digest=digest)
    RegistryClient(f"{host}/bench/mf:{tag}", plain_http=True).push(art)
    RegistryClient(f"{host}/bench/mf:{tag}", plain_http=True).pull_to(out, parents=False)  # as `oras pull -o`


def run_oras_py(host: str, src: Path, out: Path, tag: str) -> None:
    os.chdir(src.parent)  # oras-py pushes files under the working directory only
    client = oras.client.OrasClient(hostname=host, insecure=True)
    client.push(target=f"{host}/bench/oraspy:{tag}", files=[f"{src.name}:{WASM_LAYER}"],
                manifest_config=f"runtime-config.json:{WASM_CONFIG}")
    files = oras.client.OrasClient(hostname=host, insecure=True).pull(target=f"{host}/bench/oraspy:{tag}",
                                                                       outdir=str(out.parent / f"oraspy-{tag}"))
    shutil.move(files[0], out)


def paired(times: dict[str, list[float]]) -> float:
    """Median over rounds of meshfilter's time / oras-py's time in the same round."""
    return median([m / o for m, o in zip(times["meshfilter"], times["oras-py"], strict=True)])


def timed(fn: Callable[[], None]) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=15, help="counted rounds per size")
    ap.add_argument("--samples", action="store_true", help="print every round's times to stderr")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-oras-", ))
    (work / "runtime-config.json").write_bytes(RC)
    shm = Path("/dev/shm")
    reg_dir = Path(tempfile.mkdtemp(prefix="bench-oras-registry-", dir=shm if shm.is_dir() else None))
    cores = sorted(os.sched_getaffinity(0))
    rows = []
    try:
        with RegistryServer(reg_dir) as reg:
            if len(cores) >= 2:
                assert reg.pid is not None
                os.sched_setaffinity(reg.pid, {cores[0]})
                os.sched_setaffinity(0, {cores[1]})
            for label, size in SIZES:
                rounds = args.rounds
                wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
                cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
                for r in range(rounds + 1):  # round 0 warms up both, not counted
                    for variant in (VARIANTS if r % 2 == 0 else VARIANTS[::-1]):
                        tag = f"{label.replace(' ', '')}-{r}"
                        src, out = work / f"filter-{tag}.wasm", work / f"out-{variant}-{tag}.wasm"
                        src.write_bytes(module(size))
                        fn = run_meshfilter if variant == "meshfilter" else run_oras_py
                        w, c = timed(lambda fn=fn, src=src, out=out, tag=tag: fn(reg.host, src, out, tag))
                        assert out.read_bytes() == src.read_bytes(), f"{variant} pulled other bytes"
                        src.unlink()
                        out.unlink()
                        if args.samples:
                            print(f"  {label} round {r} {variant}: wall {w * 1000:.0f} ms, CPU {c * 1000:.0f} ms",
                                  file=sys.stderr)
                        if r:
                            wall[variant].append(w)
                            cpu[variant].append(c)
                mw, ow = median(wall["meshfilter"]), median(wall["oras-py"])
                mc, oc = median(cpu["meshfilter"]), median(cpu["oras-py"])
                pw, pc = paired(wall), paired(cpu)
                rows.append((label, rounds, mw, ow, mc, oc, pw, pc))
                print(f"{label}: wall meshfilter {mw * 1000:.0f} ms, oras-py {ow * 1000:.0f} ms, ratio {mw / ow:.2f} "
                      f"(paired {pw:.2f}); client CPU {mc * 1000:.0f} vs {oc * 1000:.0f} ms, ratio {mc / oc:.2f} "
                      f"(paired {pc:.2f})", flush=True)
    finally:
        os.chdir(Path(__file__).resolve().parent)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(reg_dir, ignore_errors=True)
    body = ["Push + pull of the ASM artifact, file to file (`meshfilter oras push` + `pull -o` library path vs "
            "oras-py `push` + `pull`), fresh bytes each round, one local docker-registry over loopback HTTP "
            "(its storage in RAM), "
            "client and registry pinned to separate cores; medians of alternating rounds. *Paired* is the "
            "median over rounds of meshfilter's time divided by oras-py's in the same round (the two run "
            "back to back, so they share the machine's state of the moment):", "",
            "| module | rounds | meshfilter wall | oras-py wall | ratio (wall) | paired (wall) "
            "| meshfilter client CPU | oras-py client CPU | ratio (CPU) | paired (CPU) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for label, rounds, mw, ow, mc, oc, pw, pc in rows:
        body.append(f"| {label} | {rounds} | {mw * 1000:.0f} ms | {ow * 1000:.0f} ms | {mw / ow:.2f} | {pw:.2f} "
                    f"| {mc * 1000:.0f} ms | {oc * 1000:.0f} ms | {mc / oc:.2f} | {pc:.2f} |")
    body += ["", "meshfilter sends a `GET /v2/` ping before uploading and sends the 20 MB layer as two PATCH "
             "chunks and a PUT (oras-py: one PUT), reads and hashes the module in one pass, streams the pulled "
             "layer into the output's temp file checking its digest as it arrives, and fsyncs the output "
             "before the rename (writeback started every 4 MiB); oras-py writes the pulled layer without "
             "checking it and without fsync. The output folder is on the machine's disk (ext4), as a user's "
             "would be: its writeback makes single 20 MB rounds of either client up to 1.6 times slower "
             "at random, so read the medians and the paired ratios, not single rounds. Target: ratio <= 1.0 at 20 MB."]
    if not args.no_write:
        write_section("oras", "## oras: push + pull vs oras-py\n\n" + "\n".join(body))


if __name__ == "__main__":
    main()
