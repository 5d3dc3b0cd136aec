"""Measure the oras-py shortfalls that meshfilter.oras.client replaces (results in docs/oras.md).

Run: python bench/oras_shortfalls.py  (starts Debian's docker-registry; oras-py's retry sleeps are recorded,
not slept, so the run takes seconds while reporting how long oras-py would have waited).
"""

from __future__ import annotations

import tempfile, time, os, types
from pathlib import Path
import oras.client, oras.provider, oras.decorator, oras.container
from meshfilter.oras.testing import RegistryServer
from meshfilter.util.ports import free_port
sleeps=[]
oras.decorator.time = types.SimpleNamespace(sleep=lambda s: sleeps.append(s))
d=Path(tempfile.mkdtemp()); os.chdir(d)
Path("m.wasm").write_bytes(b"\0asm\1\0\0\0"+os.urandom(1000))
Path("runtime-config.json").write_text('{"type":"envoy_proxy"}')
F=["m.wasm:application/vnd.module.wasm.content.layer.v1+wasm"]; C="runtime-config.json:application/vnd.module.wasm.config.v1+json"
def attempt(label, fn):
    sleeps.clear(); t=time.time()
    try: r=fn(); res=getattr(r,"status_code",r)
    except Exception as e: res=f"{type(e).__name__}: {str(e)[:160]}"
    print(f"{label}: {res} | retry sleeps requested: {len(sleeps)} totalling {sum(sleeps):.0f}s | wall {time.time()-t:.1f}s")
port=free_port()
attempt("unreachable", lambda: oras.client.OrasClient(insecure=True).push(target=f"127.0.0.1:{port}/a/b:1", files=F, manifest_config=C))
with RegistryServer(d/"reg", "htpasswd") as reg:
    def tok():
        c=oras.client.OrasClient(insecure=True); c.auth.set_basic_auth(reg.username, reg.password)
        return c.push(target=f"{reg.host}/a/b:1", files=F, manifest_config=C)
    attempt("htpasswd registry, token backend (default), right password", tok)
    def basicwrong():
        c=oras.client.OrasClient(insecure=True, auth_backend="basic"); c.auth.set_basic_auth(reg.username, "wrong")
        return c.push(target=f"{reg.host}/a/b:2", files=F, manifest_config=C)
    attempt("htpasswd registry, basic backend, wrong password", basicwrong)
with RegistryServer(d/"reg2", "open") as reg:
    from meshfilter.oras.formats import build_artifact
    from meshfilter.oras.client import RegistryClient
    art=build_artifact("docker", Path("m.wasm").read_bytes(), runtime_config=None)
    cl=RegistryClient(f"{reg.host}/d/x:1", plain_http=True)
    for dsc in art.descriptors(): cl.upload_blob(dsc, art.blobs[dsc["digest"]])
    r=oras.provider.Registry(hostname=reg.host, insecure=True)
    attempt("docker schema 2 manifest via upload_manifest", lambda: (lambda x: f"{x.status_code} {x.text.strip()[:100]}")(r.upload_manifest(art.manifest, oras.container.Container(f"{reg.host}/d/x:1"))))
