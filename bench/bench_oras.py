"""Push + pull of a 1 MB and a 20 MB Wasm module: meshfilter's client vs calling oras-py directly.

Both push the seed's ASM artifact (config runtime-config.json, one wasm layer) to the same local
docker-registry and pull it back. Every round uses fresh module bytes, so no blob is skipped; variants
alternate within each round; medians and the ratio meshfilter/oras-py are reported.

Run: python bench/bench_oras.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import oras.client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import median, write_section  # noqa: E402
from meshfilter.oras.client import RegistryClient  # noqa: E402
from meshfilter.oras.formats import WASM_CONFIG, WASM_LAYER, build_artifact  # noqa: E402
from meshfilter.oras.runtime_config import build_runtime_config  # noqa: E402
from meshfilter.oras.testing import RegistryServer  # noqa: E402

RC = build_runtime_config(["propaganda_filter_root"]).to_bytes()


def module(size: int) -> bytes:
    return b"\0asm\x01\0\0\0" + os.urandom(size - 8)


def run_meshfilter(host: str, data: bytes, tag: str) -> float:
    t0 = time.perf_counter()
    art = build_artifact("asm", data, runtime_config=RC, title="filter.wasm")
    RegistryClient(f"{host}/bench/mf:{tag}", plain_http=True).push(art)
    pulled = RegistryClient(f"{host}/bench/mf:{tag}", plain_http=True).pull()
    dt = time.perf_counter() - t0
    assert pulled.module == data
    return dt


def run_oras_py(host: str, data: bytes, tag: str, workdir: Path) -> float:
    os.chdir(workdir)
    Path("filter.wasm").write_bytes(data)
    Path("runtime-config.json").write_bytes(RC)
    out = workdir / f"out-{tag}"
    t0 = time.perf_counter()
    client = oras.client.OrasClient(hostname=host, insecure=True)
    client.push(target=f"{host}/bench/oraspy:{tag}", files=[f"filter.wasm:{WASM_LAYER}"],
                manifest_config=f"runtime-config.json:{WASM_CONFIG}")
    files = oras.client.OrasClient(hostname=host, insecure=True).pull(target=f"{host}/bench/oraspy:{tag}",
                                                                       outdir=str(out))
    dt = time.perf_counter() - t0
    assert Path(files[0]).read_bytes() == data
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-oras-"))
    rows = []
    with RegistryServer(work / "registry", "open") as reg:
        for label, size, rounds in (("1 MB", 1 << 20, args.rounds), ("20 MB", 20 << 20, max(3, args.rounds // 2))):
            times: dict[str, list[float]] = {"meshfilter": [], "oras-py": []}
            for r in range(rounds + 1):  # round 0 warms up both, not counted
                order = ["meshfilter", "oras-py"] if r % 2 == 0 else ["oras-py", "meshfilter"]
                for variant in order:
                    data, tag = module(size), f"{label.replace(' ', '')}-{r}"
                    dt = (run_meshfilter(reg.host, data, tag) if variant == "meshfilter"
                          else run_oras_py(reg.host, data, tag, work))
                    if r:
                        times[variant].append(dt)
            mf, op = median(times["meshfilter"]), median(times["oras-py"])
            mfmin, opmin = min(times["meshfilter"]), min(times["oras-py"])
            rows.append((label, rounds, mf, op, mfmin, opmin))
            print(f"{label}: meshfilter {mf * 1000:.0f} ms, oras-py {op * 1000:.0f} ms, ratio {mf / op:.2f} "
                  f"(best {mfmin * 1000:.0f} vs {opmin * 1000:.0f} ms)")
    body = ["Push + pull (ASM format, fresh bytes each round, local docker-registry over loopback HTTP), "
            "medians of alternating rounds:", "",
            "| module | rounds | meshfilter push+pull (median) | oras-py push+pull (median) | ratio (median) "
            "| best meshfilter | best oras-py | ratio (best) |",
            "|---|---|---|---|---|---|---|---|"]
    for label, rounds, mf, op, mfmin, opmin in rows:
        body.append(f"| {label} | {rounds} | {mf * 1000:.0f} ms | {op * 1000:.0f} ms | {mf / op:.2f} "
                    f"| {mfmin * 1000:.0f} ms | {opmin * 1000:.0f} ms | {mfmin / opmin:.2f} |")
    body += ["", "Both variants send the same blob PUTs through the same oras-py `put_upload`. meshfilter sends "
             "two more requests per push+pull: a `GET /v2/` ping before uploading, and a GET of the config "
             "blob when pulling. It also checks the digest of every blob it pulls; oras-py writes the "
             "pulled layer to disk without checking it. "
             "On a shared, loaded 2-core machine, single registry requests sometimes stall for 1 to 3 s, "
             "in both variants and on requests as small as a HEAD. Treat both the medians and the best-of "
             "figures as noisy, and compare runs (docs/oras.md lists several)."]
    write_section("oras", "## oras: push + pull vs oras-py\n\n" + "\n".join(body))


if __name__ == "__main__":
    main()
