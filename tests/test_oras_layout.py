from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshfilter.errors import DigestMismatchError, NotFoundError, UsageError
from meshfilter.oras.formats import build_artifact
from meshfilter.oras.layout import layout_tags, read_layout, write_layout
from meshfilter.oras.runtime_config import build_runtime_config

MOD = b"\0asm\x01\0\0\0" + b"layout" * 100
RC = build_runtime_config(["root"]).to_bytes()


@pytest.mark.parametrize("fmt", ["asm", "wasme", "compat", "docker"])
def test_write_then_read_back(tmp_path: Path, fmt: str) -> None:
    art = build_artifact(fmt, MOD, runtime_config=None if fmt == "docker" else RC)
    digest = write_layout(tmp_path / "oci", art, "v1")
    assert digest == art.digest
    assert json.loads((tmp_path / "oci" / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((tmp_path / "oci" / "index.json").read_text())
    assert index["manifests"] == [{"mediaType": art.media_type, "digest": digest, "size": len(art.manifest_bytes),
                                   "annotations": {"org.opencontainers.image.ref.name": "v1"}}]
    back = read_layout(tmp_path / "oci", "v1")
    assert back.manifest_bytes == art.manifest_bytes and back.blobs == art.blobs and back.format == fmt


def test_tags_replace_and_choose(tmp_path: Path) -> None:
    a = build_artifact("asm", MOD, runtime_config=RC)
    b = build_artifact("wasme", MOD, runtime_config=RC)
    write_layout(tmp_path, a, "one")
    write_layout(tmp_path, b, "two")
    write_layout(tmp_path, b, "one")  # retag
    assert sorted(layout_tags(tmp_path)) == ["one", "two"]
    assert read_layout(tmp_path, "one").digest == b.digest
    with pytest.raises(NotFoundError, match="tags: 'two', 'one'|tags: 'one', 'two'"):
        read_layout(tmp_path)
    with pytest.raises(NotFoundError, match="no manifest tagged 'three'"):
        read_layout(tmp_path, "three")


def test_corrupt_and_missing(tmp_path: Path) -> None:
    art = build_artifact("asm", MOD, runtime_config=RC)
    write_layout(tmp_path, art, "v1")
    layer = art.manifest["layers"][0]["digest"].split(":")[1]
    blob = tmp_path / "blobs" / "sha256" / layer
    blob.write_bytes(b"\0asm tampered")
    with pytest.raises(DigestMismatchError):
        read_layout(tmp_path, "v1")
    blob.unlink()
    with pytest.raises(NotFoundError, match="missing"):
        read_layout(tmp_path, "v1")
    write_layout(tmp_path, art, "v1")  # rewriting repairs it
    assert read_layout(tmp_path, "v1").blobs == art.blobs
    with pytest.raises(UsageError, match="not an OCI image layout"):
        read_layout(tmp_path / "nope")
