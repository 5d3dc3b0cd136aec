from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from meshfilter.errors import NotWasmArtifactError, UsageError
from meshfilter.oras.formats import (
    ANNOTATION_ABI,
    ANNOTATION_TITLE,
    ANNOTATION_TYPE,
    ANNOTATION_VARIANT,
    DOCKER_CONFIG,
    DOCKER_LAYER_TAR_GZIP,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_TAR_GZIP,
    OCI_MANIFEST,
    WASM_CONFIG,
    WASM_LAYER,
    build_artifact,
    descriptor,
    detect_format,
    extract_module,
    runtime_config_of,
    sha256_digest,
)
from meshfilter.oras.runtime_config import DEFAULT_ABI_VERSIONS, build_runtime_config

MOD = b"\0asm\x01\0\0\0" + bytes(range(200))
RC = build_runtime_config(["propaganda_filter_root"]).to_bytes()


def members(gz: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(gz))) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers()}  # type: ignore[union-attr]


def test_asm_is_the_seed_oras_push() -> None:
    a = build_artifact("asm", MOD, runtime_config=RC, title="propagate_header.wasm")
    m = a.manifest
    assert m["mediaType"] == OCI_MANIFEST and m["schemaVersion"] == 2
    assert m["config"] == descriptor(WASM_CONFIG, RC)
    assert m["layers"] == [descriptor(WASM_LAYER, MOD, {ANNOTATION_TITLE: "propagate_header.wasm"})]
    assert "annotations" not in m
    assert a.blobs == {sha256_digest(RC): RC, sha256_digest(MOD): MOD}
    assert a.digest == sha256_digest(a.manifest_bytes) and json.loads(a.manifest_bytes) == m


def test_wasme_two_layers_and_annotations() -> None:
    a = build_artifact("wasme", MOD, runtime_config=RC, annotations={"org.example/x": "1"})
    m = a.manifest
    assert m["config"]["mediaType"] == WASM_CONFIG
    assert [x["mediaType"] for x in m["layers"]] == [WASM_CONFIG, WASM_LAYER] and m["layers"][0] == m["config"]
    assert m["annotations"] == {ANNOTATION_ABI: ",".join(DEFAULT_ABI_VERSIONS), ANNOTATION_TYPE: "envoy_proxy",
                                "org.example/x": "1"}
    assert len(a.descriptors()) == 2  # config listed twice, uploaded once


def test_compat_layer_holds_plugin_and_runtime_config() -> None:
    a = build_artifact("compat", MOD, runtime_config=RC)
    m = a.manifest
    assert m["config"]["mediaType"] == OCI_CONFIG and m["annotations"] == {ANNOTATION_VARIANT: "compat"}
    assert [x["mediaType"] for x in m["layers"]] == [OCI_LAYER_TAR_GZIP]
    gz = a.blobs[m["layers"][0]["digest"]]
    assert members(gz) == {"plugin.wasm": MOD, "runtime-config.json": RC}
    cfg = json.loads(a.blobs[m["config"]["digest"]])
    assert cfg["rootfs"]["diff_ids"] == [sha256_digest(gzip.decompress(gz))]


def test_docker_schema2() -> None:
    a = build_artifact("docker", MOD, runtime_config=None)
    m = a.manifest
    assert m["mediaType"] == DOCKER_MANIFEST and m["config"]["mediaType"] == DOCKER_CONFIG
    assert [x["mediaType"] for x in m["layers"]] == [DOCKER_LAYER_TAR_GZIP]
    assert members(a.blobs[m["layers"][0]["digest"]]) == {"plugin.wasm": MOD}
    with pytest.raises(UsageError, match="cannot carry annotations"):
        build_artifact("docker", MOD, runtime_config=None, annotations={"a": "b"})


@pytest.mark.parametrize("fmt", ["asm", "wasme", "compat", "docker", "cncf"])
def test_builds_are_deterministic_and_detected_back(fmt: str) -> None:
    a = build_artifact(fmt, MOD, runtime_config=RC if fmt not in ("docker", "cncf") else None)
    b = build_artifact(fmt, MOD, runtime_config=RC if fmt not in ("docker", "cncf") else None)
    assert a.manifest_bytes == b.manifest_bytes
    d = detect_format(a.manifest)
    assert d.format == fmt
    layer = a.blobs[d.wasm_layer["digest"]]
    assert extract_module(d, layer) == MOD
    rc = runtime_config_of(d, a.manifest, a.blobs[a.manifest["config"]["digest"]], layer if d.packed else None)
    if fmt in ("docker", "cncf"):
        assert rc is None
    else:
        assert rc is not None and rc.root_ids == ("propaganda_filter_root",)


def test_detection_order_follows_istio() -> None:
    # a docker manifest wins even if its layers also look like the two-layer variant
    cfg, wasm = descriptor(WASM_CONFIG, RC), descriptor(WASM_LAYER, MOD)
    docker = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": descriptor(DOCKER_CONFIG, b"{}"),
              "layers": [wasm, descriptor(DOCKER_LAYER_TAR_GZIP, b"x")]}
    assert detect_format(docker).format == "docker"
    # two layers, wasm layer second or first: both are the wasme/oci variant
    for layers in ([cfg, wasm], [wasm, cfg]):
        m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg, "layers": layers}
        d = detect_format(m)
        assert d.format == "wasme" and d.wasm_layer == wasm
    # mediaType missing in the document: falls back to the Content-Type given
    m = {"schemaVersion": 2, "config": cfg, "layers": [wasm]}
    assert detect_format(m, OCI_MANIFEST).format == "asm"


@pytest.mark.parametrize("manifest,needle", [
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, b"{}"),
      "layers": [descriptor("text/plain", b"x")]}, "not a Wasm artifact"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, b"{}"),
      "layers": [descriptor(WASM_LAYER, b"x")] * 3}, "3 layer(s)"),
    ({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}, "image index"),
    ({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": descriptor(DOCKER_CONFIG, b"{}"),
      "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar", b"x")]}, "last layer"),
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": "x", "size": 1, "digest": "md5:1"},
      "layers": []}, "sha256"),
    ([], "not a JSON object"),
])
def test_not_wasm(manifest: object, needle: str) -> None:
    with pytest.raises(NotWasmArtifactError) as exc:
        detect_format(manifest)  # type: ignore[arg-type]
    assert needle in exc.value.line()


def test_packed_layer_without_plugin_or_with_non_wasm() -> None:
    a = build_artifact("compat", MOD, runtime_config=RC)
    d = detect_format(a.manifest)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("other.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(NotWasmArtifactError, match="no plugin.wasm"):
        extract_module(d, gzip.compress(buf.getvalue()))
    with pytest.raises(NotWasmArtifactError, match="not a gzip tar"):
        extract_module(d, b"garbage")
    d1 = detect_format(build_artifact("asm", MOD, runtime_config=RC).manifest)
    with pytest.raises(NotWasmArtifactError, match="magic"):
        extract_module(d1, b"ELF...")


def test_builder_input_errors() -> None:
    with pytest.raises(UsageError, match="not a Wasm module"):
        build_artifact("asm", b"hello", runtime_config=RC)
    with pytest.raises(UsageError, match="needs a runtime config"):
        build_artifact("wasme", MOD, runtime_config=None)
    with pytest.raises(UsageError, match="unknown format"):
        build_artifact("tarball", MOD, runtime_config=RC)


# -- what Istio's agent reads: image indexes, several layers, the CNCF layout -----------------------------

def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue())


def _index(*platforms: dict[str, str] | None) -> dict[str, object]:
    entries = []
    for i, plat in enumerate(platforms):
        d = descriptor(OCI_MANIFEST, f"manifest {i}".encode())
        if plat is not None:
            d["platform"] = plat
        entries.append(d)
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}


def test_index_takes_linux_amd64_like_go_containerregistry() -> None:
    from meshfilter.oras.formats import select_manifest

    idx = _index({"os": "linux", "architecture": "arm64"}, {"os": "linux", "architecture": "amd64", "variant": "v3"},
                 {"os": "linux", "architecture": "amd64"})
    choice = select_manifest(idx)
    assert choice.descriptor is idx["manifests"][1] and choice.reason == "linux/amd64"  # type: ignore[index]
    assert choice.platform == "linux/amd64/v3"
    note = choice.note("r.example/a:1")
    assert "image index of 3 manifest(s)" in note and "linux/amd64" in note and choice.descriptor["digest"] in note
    # an entry without a platform counts as linux/amd64 (go-containerregistry's default)
    assert select_manifest(_index({"os": "windows", "architecture": "amd64"}, None)).reason == "linux/amd64"
    # no linux/amd64: the only entry, saying which platform it is
    only = select_manifest(_index({"os": "linux", "architecture": "arm64"}))
    assert only.reason == "only" and "its only manifest (linux/arm64)" in only.note("r")
    with pytest.raises(NotWasmArtifactError, match=r"no linux/amd64 manifest \(platforms: linux/arm64, linux/s390x\)"):
        select_manifest(_index({"os": "linux", "architecture": "arm64"}, {"os": "linux", "architecture": "s390x"}))
    nested = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_INDEX, b"{}")]}
    with pytest.raises(NotWasmArtifactError, match="nested"):
        select_manifest(nested)


def test_docker_and_oci_images_with_several_layers_take_the_last() -> None:
    from meshfilter.oras.formats import extract

    base = descriptor(DOCKER_LAYER_TAR_GZIP, b"base layer")
    last_gz = _tar_gz({"runtime-config.json": RC, "plugin.wasm": MOD, "other.wasm": MOD[:8]})
    docker = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": descriptor(DOCKER_CONFIG, b"{}"),
              "layers": [base, descriptor(DOCKER_LAYER_TAR_GZIP, last_gz)]}
    d = detect_format(docker)
    assert d.format == "docker" and d.wasm_layer["digest"] == docker["layers"][1]["digest"]  # type: ignore[index]
    assert d.other_layers == (base,)
    ex = extract(d, last_gz)
    assert ex.module == MOD and ex.member == "plugin.wasm"
    assert any("last of 2 layers" in n and base["digest"][:19] in n for n in ex.notes)
    assert any("other.wasm" in n for n in ex.notes)
    # OCI (compat) with a base layer, and a last layer whose only .wasm is not named plugin.wasm
    only_gz = _tar_gz({"./filter/module.wasm": MOD, "README": b"x"})
    oci = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, b"{}"),
           "layers": [descriptor(OCI_LAYER_TAR_GZIP, b"b1"), descriptor(OCI_LAYER_TAR_GZIP, b"b2"),
                      descriptor(OCI_LAYER_TAR_GZIP, only_gz)]}
    d2 = detect_format(oci)
    assert d2.format == "compat" and len(d2.other_layers) == 2
    ex2 = extract(d2, only_gz)
    assert ex2.module == MOD and ex2.member == "filter/module.wasm"
    assert any("no plugin.wasm: took its only .wasm file, filter/module.wasm" in n for n in ex2.notes)
    with pytest.raises(NotWasmArtifactError, match=r"no plugin.wasm \(a.wasm, b.wasm\)"):
        extract(d2, _tar_gz({"a.wasm": MOD, "b.wasm": MOD}))


def test_cncf_layout_build_and_detect() -> None:
    from meshfilter.oras.formats import CNCF_ARTIFACT_MODULE, CNCF_CONFIG, CNCF_LAYER

    a = build_artifact("cncf", MOD, runtime_config=None, title="f.wasm")
    m = a.manifest
    assert m["mediaType"] == OCI_MANIFEST and m["artifactType"] == CNCF_ARTIFACT_MODULE
    assert m["config"]["mediaType"] == CNCF_CONFIG
    assert m["layers"] == [descriptor(CNCF_LAYER, MOD, {ANNOTATION_TITLE: "f.wasm"})]
    cfg = json.loads(a.blobs[m["config"]["digest"]])
    assert cfg == {"created": "1970-01-01T00:00:00Z", "architecture": "wasm", "os": "wasip1",
                   "layerDigests": [m["layers"][0]["digest"]]}
    d = detect_format(m)
    assert d.format == "cncf" and extract_module(d, a.blobs[d.wasm_layer["digest"]]) == MOD
    assert runtime_config_of(d, m, a.blobs[m["config"]["digest"]], None) is None
    assert build_artifact("cncf", MOD, runtime_config=None, title="f.wasm").manifest_bytes == a.manifest_bytes
    with pytest.raises(UsageError, match="no place for a runtime config"):
        build_artifact("cncf", MOD, runtime_config=RC)
    two = {**m, "layers": [m["layers"][0], descriptor(CNCF_LAYER, MOD + b"x")]}
    with pytest.raises(NotWasmArtifactError, match="2 application/wasm layers"):
        detect_format(two)


def test_library_errors_name_fields_not_flags() -> None:
    with pytest.raises(UsageError) as exc:
        build_artifact("asm", MOD, runtime_config=None)
    assert exc.value.where == "root_id" and "`root_id`" in (exc.value.hint or "") and "--" not in exc.value.line()
    with pytest.raises(UsageError) as exc:
        build_artifact("docker", MOD, runtime_config=None, annotations={"a": "b"})
    assert exc.value.where == "annotation" and "--" not in exc.value.line()
