"""Measure the oras-py shortfalls that meshfilter.oras.client replaces (results in docs/oras.md).

Run: python bench/oras_shortfalls.py — starts Debian's docker-registry. oras-py's retry sleeps are recorded,
not slept, so the run takes seconds while reporting how long oras-py would have waited.
"""

from __future__ import annotations

import os
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import oras.client
import oras.container
import oras.decorator
import oras.provider

from meshfilter.oras.client import RegistryClient
from meshfilter.oras.formats import WASM_CONFIG, WASM_LAYER, build_artifact
from meshfilter.testing.registry import RegistryServer
from meshfilter.util.ports import free_port

SLEEPS: list[float] = []
FILES = [f"m.wasm:{WASM_LAYER}"]
CONFIG = f"runtime-config.json:{WASM_CONFIG}"


def attempt(label: str, fn: Callable[[], Any]) -> None:
    SLEEPS.clear()
    t0 = time.time()
    try:
        r = fn()
        res = getattr(r, "status_code", r)
    except Exception as exc:  # noqa: BLE001 - we report whatever oras-py raises
        res = f"{type(exc).__name__}: {str(exc)[:160]}"
    print(f"{label}: {res} | retry sleeps requested: {len(SLEEPS)} totalling {sum(SLEEPS):.0f}s "
          f"| wall {time.time() - t0:.1f}s")


def main() -> None:
    oras.decorator.time = types.SimpleNamespace(sleep=SLEEPS.append)  # record instead of sleeping
    work = Path(tempfile.mkdtemp(prefix="oras-shortfalls-"))
    os.chdir(work)  # oras-py only pushes files under the working directory
    Path("m.wasm").write_bytes(b"\0asm\1\0\0\0" + os.urandom(1000))
    Path("runtime-config.json").write_text('{"type":"envoy_proxy"}')
    port = free_port()
    attempt("unreachable registry", lambda: oras.client.OrasClient(insecure=True).push(
        target=f"127.0.0.1:{port}/a/b:1", files=FILES, manifest_config=CONFIG))
    with RegistryServer(work / "reg", "htpasswd") as reg:
        def token_backend() -> Any:
            c = oras.client.OrasClient(insecure=True)
            c.auth.set_basic_auth(reg.username, reg.password)
            return c.push(target=f"{reg.host}/a/b:1", files=FILES, manifest_config=CONFIG)

        def basic_wrong() -> Any:
            c = oras.client.OrasClient(insecure=True, auth_backend="basic")
            c.auth.set_basic_auth(reg.username, "wrong")
            return c.push(target=f"{reg.host}/a/b:2", files=FILES, manifest_config=CONFIG)

        attempt("htpasswd registry, token backend (default), right password", token_backend)
        attempt("htpasswd registry, basic backend, wrong password", basic_wrong)
    with RegistryServer(work / "reg2", "open") as reg:
        art = build_artifact("docker", Path("m.wasm").read_bytes(), runtime_config=None)
        client = RegistryClient(f"{reg.host}/d/x:1", plain_http=True)
        for desc in art.descriptors():
            client.upload_blob(desc, art.blobs[desc["digest"]])
        registry = oras.provider.Registry(hostname=reg.host, insecure=True)

        def docker_manifest() -> str:
            resp = registry.upload_manifest(art.manifest, oras.container.Container(f"{reg.host}/d/x:1"))
            return f"{resp.status_code} {resp.text.strip()[:100]}"

        attempt("Docker schema 2 manifest via upload_manifest", docker_manifest)


if __name__ == "__main__":
    main()
