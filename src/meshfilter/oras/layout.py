"""OCI image layout on disk (image-spec ``image-layout.md``): write an artifact, read one back to push.

``DIR/oci-layout``, ``DIR/index.json`` (one entry per tag, ``org.opencontainers.image.ref.name``) and
``DIR/blobs/sha256/<hex>``. Every file is written atomically; blobs already present are kept.
Reading checks every blob (manifest included) against its digest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meshfilter.errors import DigestMismatchError, NotFoundError, UsageError
from meshfilter.oras.formats import OCI_INDEX, OCI_MANIFEST, Artifact, detect_format, sha256_digest
from meshfilter.util.fs import atomic_write_bytes

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
LAYOUT_DOC = b'{"imageLayoutVersion":"1.0.0"}'


def _blob_path(root: Path, digest: str) -> Path:
    algo, _, hexd = digest.partition(":")
    return root / "blobs" / algo / hexd


def _read_index(root: Path) -> dict[str, Any]:
    path = root / "index.json"
    if not path.exists():
        return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UsageError("index.json is not readable JSON", where=str(path),
                         hint="point --oci-layout at an OCI image layout directory") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
        raise UsageError("index.json has no manifests list", where=str(path))
    return doc


def write_layout(root: str | Path, artifact: Artifact, tag: str) -> str:
    """Add ``artifact`` under ``tag`` (replacing an older entry with that tag). Returns the manifest digest."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise UsageError("exists and is not a directory", where=str(root), hint="choose a directory path")
    index = _read_index(root)
    for digest, data in [*artifact.blobs.items(), (artifact.digest, artifact.manifest_bytes)]:
        path = _blob_path(root, digest)
        if not path.exists() or sha256_digest(path.read_bytes()) != digest:
            atomic_write_bytes(path, data)
    atomic_write_bytes(root / LAYOUT_FILE, LAYOUT_DOC)
    entry = {"mediaType": artifact.media_type, "digest": artifact.digest, "size": len(artifact.manifest_bytes),
             "annotations": {REF_NAME: tag}}
    index["manifests"] = [m for m in index["manifests"]
                          if not (isinstance(m, dict) and (m.get("annotations") or {}).get(REF_NAME) == tag)]
    index["manifests"].append(entry)
    index.setdefault("mediaType", OCI_INDEX)
    atomic_write_bytes(root / "index.json", json.dumps(index, indent=2).encode() + b"\n")
    return artifact.digest


def _read_blob(root: Path, digest: str) -> bytes:
    path = _blob_path(root, digest)
    try:
        data = path.read_bytes()
    except OSError:
        raise NotFoundError(f"blob {digest} is missing", where=str(root),
                            hint="the layout is incomplete; write it again") from None
    got = sha256_digest(data)
    if got != digest:
        raise DigestMismatchError(f"blob {digest} has digest {got}", where=str(path),
                                  hint="the layout is corrupt; write it again")
    return data


def layout_tags(root: str | Path) -> list[str]:
    return [str((m.get("annotations") or {}).get(REF_NAME, "")) for m in _read_index(Path(root))["manifests"]
            if isinstance(m, dict)]


def read_layout(root: str | Path, tag: str | None = None) -> Artifact:
    """The artifact tagged ``tag`` (or the only one) in the layout at ``root``; every digest checked."""
    root = Path(root)
    if not (root / LAYOUT_FILE).exists():
        raise UsageError("not an OCI image layout (no oci-layout file)", where=str(root),
                         hint="write one with 'meshfilter oras push REF MODULE --oci-layout DIR'")
    manifests = [m for m in _read_index(root)["manifests"] if isinstance(m, dict)]
    chosen = [m for m in manifests if tag is not None and (m.get("annotations") or {}).get(REF_NAME) == tag]
    if not chosen and len(manifests) == 1 and tag is None:
        chosen = manifests
    if not chosen:
        tags = ", ".join(repr(t) for t in layout_tags(root)) or "none"
        raise NotFoundError(f"no manifest tagged {tag!r} (tags: {tags})" if tag else
                            f"{len(manifests)} manifests and no tag chosen (tags: {tags})", where=str(root),
                            hint="pass --layout-tag TAG")
    desc = chosen[0]
    raw = _read_blob(root, str(desc["digest"]))
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise UsageError("manifest blob is not JSON", where=str(root)) from None
    detected = detect_format(manifest, str(desc.get("mediaType") or OCI_MANIFEST), where=f"{root} manifest")
    blobs = {d["digest"]: _read_blob(root, d["digest"]) for d in [manifest["config"], *manifest["layers"]]}
    return Artifact(format=detected.format, manifest=manifest, manifest_bytes=raw, blobs=blobs,
                    declared_media_type=str(desc.get("mediaType") or ""))
