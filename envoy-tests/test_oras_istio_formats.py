"""What Istio's agent pulls, against the real registry, cross-checked with skopeo both ways.

* skopeo copies what we push byte for byte (registry to registry with --preserve-digests, and into an OCI
  layout whose files we compare with our artifact's bytes);
* we pull what skopeo pushed from an OCI layout this test writes by hand (json + hashlib, none of our code):
  image indexes, multi-layer OCI images, a Docker multi-layer image (skopeo converts with --format v2s2),
  the only ``.wasm`` file of a layer, and the CNCF Wasm artifact layout;
* ``deploy wasmplugin --pin`` through an index pins the manifest Istio would take.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshfilter.cli import main
from meshfilter.oras.client import RegistryClient, resolve_digest
from meshfilter.oras.formats import (
    CNCF_ARTIFACT_MODULE,
    CNCF_CONFIG,
    CNCF_LAYER,
    DOCKER_LAYER_TAR_GZIP,
    DOCKER_MANIFEST,
    FORMATS,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_TAR_GZIP,
    OCI_MANIFEST,
    build_artifact,
)
from meshfilter.oras.runtime_config import build_runtime_config
from meshfilter.testing.registry import RegistryServer, fake_module

pytestmark = pytest.mark.registry
ROOT = "propaganda_filter_root"
RC = build_runtime_config([ROOT]).to_bytes()


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("reg-istio"), "open") as server:
        yield server


def skopeo(*args: str) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(["skopeo", *args], capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


def raw_manifest(reg: RegistryServer, repo: str, ref: str) -> bytes:
    return RegistryClient(f"{reg.host}/{repo}:x", plain_http=True).get_manifest(ref).raw


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


# -- an OCI layout written by hand ------------------------------------------------------------------------

def tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


class HandLayout:
    """image-spec's image-layout.md, by hand: blobs/sha256/<hex>, oci-layout, index.json."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.tags: list[dict[str, Any]] = []

    def blob(self, media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
        hexd = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / hexd).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{hexd}", "size": len(data), **extra}

    def image(self, layers: list[tuple[str, bytes]], *, config: tuple[str, bytes] | None = None,
              **extra: Any) -> dict[str, Any]:
        diff_ids = [f"sha256:{hashlib.sha256(gzip.decompress(d)).hexdigest()}" for mt, d in layers if "gzip" in mt]
        cfg = config or (OCI_CONFIG, json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
            "type": "layers", "diff_ids": diff_ids}}).encode())
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, **extra, "config": self.blob(*cfg),
               "layers": [self.blob(mt, d) for mt, d in layers]}
        return self.blob(OCI_MANIFEST, json.dumps(doc).encode())

    def index(self, children: list[tuple[dict[str, Any], dict[str, str]]]) -> dict[str, Any]:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX,
               "manifests": [{**desc, "platform": plat} for desc, plat in children]}
        return self.blob(OCI_INDEX, json.dumps(doc).encode())

    def tag(self, desc: dict[str, Any], tag: str) -> None:
        self.tags.append({**desc, "annotations": {"org.opencontainers.image.ref.name": tag}})
        (self.root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": self.tags}))


@pytest.fixture(scope="module")
def hand(tmp_path_factory: pytest.TempPathFactory) -> HandLayout:
    return HandLayout(tmp_path_factory.mktemp("hand") / "layout")


def skopeo_push(reg: RegistryServer, layout: HandLayout, tag: str, dest: str, *extra: str) -> None:
    skopeo("copy", "--dest-tls-verify=false", *extra, f"oci:{layout.root}:{tag}", f"docker://{reg.host}/{dest}")


# -- skopeo copies our push byte for byte ------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_skopeo_copies_our_push_byte_for_byte(fmt: str, reg: RegistryServer, tmp_path: Path) -> None:
    mod = fake_module(40_000)
    art = build_artifact(fmt, mod, runtime_config=None if fmt in ("docker", "cncf") else RC, title="f.wasm")
    digest = RegistryClient(f"{reg.host}/ours/{fmt}:1", plain_http=True).push(art)
    # registry to registry: the same manifest bytes arrive, so the same digest
    skopeo("copy", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
           f"docker://{reg.host}/ours/{fmt}:1", f"docker://{reg.host}/copied/{fmt}:1")
    assert raw_manifest(reg, f"copied/{fmt}", "1") == art.manifest_bytes
    assert resolve_digest(f"{reg.host}/copied/{fmt}:1", plain_http=True) == digest
    # into an OCI layout: every file is one of our blobs, byte for byte
    layout = tmp_path / "skopeo-layout"
    skopeo("copy", "--preserve-digests", "--src-tls-verify=false", f"docker://{reg.host}/ours/{fmt}:1",
           f"oci:{layout}:{fmt}")
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [digest]
    files = {f"sha256:{p.name}": p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}
    assert files == {**art.blobs, digest: art.manifest_bytes}
    # and what skopeo copied pulls back to the module
    assert RegistryClient(f"{reg.host}/copied/{fmt}:1", plain_http=True).pull().module == mod


# -- we pull what skopeo pushed from a layout written by hand --------------------------------------------

def test_multi_layer_oci_image_takes_the_last_layer(reg: RegistryServer, hand: HandLayout, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    mod = fake_module(30_000)
    base = tar_gz({"etc/os-release": b"ID=scratch\n", "lib/decoy.wasm": fake_module(100)})
    last = tar_gz({"plugin.wasm": mod, "runtime-config.json": RC, "extra.wasm": fake_module(200)})
    hand.tag(hand.image([(OCI_LAYER_TAR_GZIP, base), (OCI_LAYER_TAR_GZIP, last)]), "multi")
    skopeo_push(reg, hand, "multi", "hand/multi:1")
    out = tmp_path / "m.wasm"
    rc, _, err = cli(["oras", "pull", f"{reg.host}/hand/multi:1", "-o", str(out), "--plain-http"], capsys)
    assert rc == 0, err
    assert out.read_bytes() == mod and "(compat," in err
    base_digest = "sha256:" + hashlib.sha256(base).hexdigest()
    assert "note: the module comes from the last of 2 layers" in err and base_digest[:19] in err
    assert "note: took plugin.wasm; other .wasm files in the layer left aside: extra.wasm" in err
    rc, text, _ = cli(["oras", "inspect", f"{reg.host}/hand/multi:1", "--plain-http"], capsys)
    assert rc == 0 and f"Root ids:     {ROOT}" in text and "Note:         the module comes from the last" in text
    # Docker schema 2, several layers: skopeo converts the same image (--format v2s2)
    skopeo_push(reg, hand, "multi", "hand/multi-docker:1", "--format", "v2s2")
    doc = json.loads(raw_manifest(reg, "hand/multi-docker", "1"))
    assert doc["mediaType"] == DOCKER_MANIFEST
    assert [x["mediaType"] for x in doc["layers"]] == [DOCKER_LAYER_TAR_GZIP] * 2
    rc, _, err = cli(["oras", "pull", f"{reg.host}/hand/multi-docker:1", "-o", str(out), "--plain-http"], capsys)
    assert rc == 0 and out.read_bytes() == mod and "(docker," in err and "last of 2 layers" in err


def test_the_only_wasm_file_of_the_last_layer(reg: RegistryServer, hand: HandLayout, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    mod = fake_module(20_000)
    hand.tag(hand.image([(OCI_LAYER_TAR_GZIP, tar_gz({"app/filter.wasm": mod, "README.md": b"hi"}))]), "onlywasm")
    skopeo_push(reg, hand, "onlywasm", "hand/onlywasm:1")
    out = tmp_path / "m.wasm"
    rc, _, err = cli(["oras", "pull", f"{reg.host}/hand/onlywasm:1", "-o", str(out), "--plain-http"], capsys)
    assert rc == 0 and out.read_bytes() == mod
    assert "note: the layer has no plugin.wasm: took its only .wasm file, app/filter.wasm" in err


def test_cncf_layout_pushed_by_skopeo_and_by_us(reg: RegistryServer, hand: HandLayout, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    mod = fake_module(25_000)
    layer_digest = "sha256:" + hashlib.sha256(mod).hexdigest()
    config = json.dumps({"created": "2024-01-01T00:00:00Z", "architecture": "wasm", "os": "wasip1",
                         "layerDigests": [layer_digest]}).encode()
    hand.tag(hand.image([(CNCF_LAYER, mod)], config=(CNCF_CONFIG, config), artifactType=CNCF_ARTIFACT_MODULE), "cncf")
    skopeo_push(reg, hand, "cncf", "hand/cncf:1")
    out = tmp_path / "m.wasm"
    rc, _, err = cli(["oras", "pull", f"{reg.host}/hand/cncf:1", "-o", str(out), "--plain-http"], capsys)
    assert rc == 0 and out.read_bytes() == mod and "(cncf," in err
    module = tmp_path / "filter.wasm"
    module.write_bytes(mod)
    rc, pushed, err = cli(["oras", "push", f"{reg.host}/ours-cncf/a:1", str(module), "--format", "cncf",
                           "--plain-http"], capsys)
    assert rc == 0, err
    doc = json.loads(raw_manifest(reg, "ours-cncf/a", "1"))
    assert doc["artifactType"] == CNCF_ARTIFACT_MODULE and doc["config"]["mediaType"] == CNCF_CONFIG
    assert [x["mediaType"] for x in doc["layers"]] == [CNCF_LAYER] and doc["layers"][0]["digest"] == layer_digest
    skopeo_view = json.loads(skopeo("inspect", "--raw", "--tls-verify=false",
                                    f"docker://{reg.host}/ours-cncf/a:1").stdout)
    assert skopeo_view == doc
    rc, _, err = cli(["oras", "push", f"{reg.host}/ours-cncf/a:2", str(module), "--format", "cncf",
                      "--root-id", ROOT, "--plain-http"], capsys)
    assert rc == 2 and "no place for a runtime config" in err and "--root-id" in err


def test_image_index_takes_linux_amd64_and_says_so(reg: RegistryServer, hand: HandLayout, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    arm, amd = fake_module(10_000), fake_module(12_000)
    arm_desc = hand.image([(OCI_LAYER_TAR_GZIP, tar_gz({"plugin.wasm": arm}))])
    amd_desc = hand.image([(OCI_LAYER_TAR_GZIP, tar_gz({"plugin.wasm": amd, "runtime-config.json": RC}))])
    idx = hand.index([(arm_desc, {"os": "linux", "architecture": "arm64"}),
                      (amd_desc, {"os": "linux", "architecture": "amd64"})])
    hand.tag(idx, "index")
    hand.tag(hand.index([(arm_desc, {"os": "linux", "architecture": "arm64"})]), "arm-only")
    skopeo_push(reg, hand, "index", "hand/index:1", "--all", "--preserve-digests")
    skopeo_push(reg, hand, "arm-only", "hand/index:arm", "--all", "--preserve-digests")
    assert "sha256:" + hashlib.sha256(raw_manifest(reg, "hand/index", "1")).hexdigest() == idx["digest"]
    out = tmp_path / "m.wasm"
    rc, _, err = cli(["oras", "pull", f"{reg.host}/hand/index:1", "-o", str(out), "--plain-http"], capsys)
    assert rc == 0 and out.read_bytes() == amd
    assert f"is an image index of 2 manifest(s): took the linux/amd64 manifest (linux/amd64), {amd_desc['digest']}" \
        in err
    rc, _, err = cli(["oras", "pull", f"{reg.host}/hand/index:arm", "-o", str(out), "--plain-http"], capsys)
    assert rc == 0 and out.read_bytes() == arm and "took its only manifest (linux/arm64)" in err
    rc, text, _ = cli(["oras", "inspect", f"{reg.host}/hand/index:1", "--plain-http"], capsys)
    assert rc == 0 and f"Index:        {idx['digest']} (2 manifest(s); took linux/amd64" in text
    assert f"Digest:       {amd_desc['digest']}" in text and f"Root ids:     {ROOT}" in text
    # deploy --pin pins what Istio's agent takes: the linux/amd64 manifest's digest (its sha256 check compares it)
    proc = subprocess.run([sys.executable, "-m", "meshfilter", "deploy", "wasmplugin", "--name", "ph",
                           "--image", f"{reg.host}/hand/index:1", "--pin", "--plain-http", "--root-id", ROOT,
                           "--parameters", '{"head_tag_name": "route-v", "head_tag_value": "v2"}'],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "DOCKER_CONFIG": str(tmp_path / "none")})
    assert proc.returncode == 0, proc.stderr
    assert f"sha256: {amd_desc['digest'][7:]}" in proc.stdout and f"@{amd_desc['digest']}" in proc.stdout
    assert "note:" in proc.stderr and "took the linux/amd64 manifest" in proc.stderr
    assert resolve_digest(f"{reg.host}/hand/index:1", plain_http=True) == amd_desc["digest"]
