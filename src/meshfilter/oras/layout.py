"""OCI image layout on disk (image-spec ``image-layout.md``): write an artifact, read one back to push, and
the blob/manifest store :mod:`meshfilter.oras.copy` copies to and from.

``DIR/oci-layout``, ``DIR/index.json`` (one entry per tag, ``org.opencontainers.image.ref.name``) and
``DIR/blobs/sha256/<hex>``. Every file is written atomically; blobs already present (and intact) are kept;
index.json is written last, so an interrupted write leaves no tag. Reading checks every blob (manifest
included) against its digest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meshfilter.errors import DigestMismatchError, NotFoundError, UsageError
from meshfilter.oras.formats import OCI_INDEX, OCI_MANIFEST, Artifact, detect_format
from meshfilter.util.digest import sha256_digest
from meshfilter.util.fs import atomic_write_bytes

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
LAYOUT_DOC = b'{"imageLayoutVersion":"1.0.0"}'
_LAYOUT_HINT = "give the directory of an OCI image layout (it holds oci-layout, index.json and blobs/)"


class LayoutStore:
    """One OCI image layout directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __str__(self) -> str:
        return str(self.root)

    # -- reading -----------------------------------------------------------------------------------
    def require(self) -> None:
        if not (self.root / LAYOUT_FILE).exists():
            raise UsageError("not an OCI image layout (no oci-layout file)", where=str(self.root), hint=_LAYOUT_HINT)

    def _blob_path(self, digest: str) -> Path:
        algo, _, hexd = digest.partition(":")
        return self.root / "blobs" / algo / hexd

    def read_index(self) -> dict[str, Any]:
        path = self.root / "index.json"
        if not path.exists():
            return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            raise UsageError("index.json is not readable JSON", where=str(path), hint=_LAYOUT_HINT) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
            raise UsageError("index.json has no manifests list", where=str(path))
        return doc

    def entries(self) -> list[dict[str, Any]]:
        return [m for m in self.read_index()["manifests"] if isinstance(m, dict)]

    def tags(self) -> list[str]:
        return [str((m.get("annotations") or {}).get(REF_NAME, "")) for m in self.entries()]

    def find(self, reference: str | None) -> dict[str, Any]:
        """The index entry for a tag or digest; with None, the only entry."""
        self.require()
        manifests = self.entries()
        if reference and reference.startswith("sha256:"):
            chosen = [m for m in manifests if m.get("digest") == reference]
            if not chosen and self._blob_path(reference).exists():
                return {"digest": reference, "mediaType": ""}  # an untagged manifest (an index's child)
        else:
            chosen = [m for m in manifests if reference is not None and
                      (m.get("annotations") or {}).get(REF_NAME) == reference]
        if not chosen and len(manifests) == 1 and reference is None:
            chosen = manifests
        if not chosen:
            tags = ", ".join(repr(t) for t in self.tags()) or "none"
            raise NotFoundError(f"no manifest tagged {reference!r} (tags: {tags})" if reference else
                                f"{len(manifests)} manifests and no tag chosen (tags: {tags})", where=str(self.root),
                                hint="choose one by tag (`layout_tag`)")
        return chosen[0]

    def read_blob(self, digest: str) -> bytes:
        path = self._blob_path(digest)
        try:
            data = path.read_bytes()
        except OSError:
            raise NotFoundError(f"blob {digest} is missing", where=str(self.root),
                                hint="the layout is incomplete; write it again") from None
        got = sha256_digest(data)
        if got != digest:
            raise DigestMismatchError(f"blob {digest} has digest {got}", where=str(path),
                                      hint="the layout is corrupt; write it again")
        return data

    def fetch_manifest(self, reference: str | None) -> tuple[bytes, str]:
        """(raw bytes, media type) of the manifest at a tag or digest, digest-checked."""
        desc = self.find(reference)
        raw = self.read_blob(str(desc["digest"]))
        media_type = str(desc.get("mediaType") or "")
        if not media_type:
            try:
                media_type = str(json.loads(raw).get("mediaType") or OCI_MANIFEST)
            except (ValueError, AttributeError):
                media_type = OCI_MANIFEST
        return raw, media_type

    # -- writing -----------------------------------------------------------------------------------
    def _prepare(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise UsageError("exists and is not a directory", where=str(self.root), hint="choose a directory path")

    def has_blob(self, desc: dict[str, Any]) -> bool:
        path = self._blob_path(desc["digest"])
        try:
            return path.stat().st_size == desc["size"] and sha256_digest(path.read_bytes()) == desc["digest"]
        except OSError:
            return False

    def write_blob(self, digest: str, data: bytes | bytearray) -> None:
        if sha256_digest(data) != digest:
            raise DigestMismatchError(f"blob to write does not have digest {digest}", where=str(self.root))
        self._prepare()
        path = self._blob_path(digest)
        if not path.exists() or sha256_digest(path.read_bytes()) != digest:
            atomic_write_bytes(path, data)

    def tag(self, digest: str, media_type: str, size: int, tag: str) -> None:
        """Point ``tag`` at a manifest already written as a blob (replacing an older entry with that tag)."""
        self._prepare()
        index = self.read_index()
        atomic_write_bytes(self.root / LAYOUT_FILE, LAYOUT_DOC)
        entry = {"mediaType": media_type, "digest": digest, "size": size, "annotations": {REF_NAME: tag}}
        index["manifests"] = [m for m in index["manifests"]
                              if not (isinstance(m, dict) and (m.get("annotations") or {}).get(REF_NAME) == tag)]
        index["manifests"].append(entry)
        index.setdefault("mediaType", OCI_INDEX)
        atomic_write_bytes(self.root / "index.json", json.dumps(index, indent=2).encode() + b"\n")

    # -- the store interface of meshfilter.oras.copy ----------------------------------------------
    def get_blob(self, desc: dict[str, Any]) -> bytes:
        data = self.read_blob(desc["digest"])
        if len(data) != desc["size"]:
            raise DigestMismatchError(f"blob {desc['digest']} is {len(data)} bytes, not {desc['size']}",
                                      where=str(self.root))
        return data

    def put_blob(self, desc: dict[str, Any], data: bytes, stats: Any = None) -> None:
        self.write_blob(desc["digest"], data)

    def put_manifest(self, raw: bytes, media_type: str, reference: str) -> str:
        """Write a manifest blob; a tag (not a digest) also gets an index.json entry."""
        digest = sha256_digest(raw)
        self.write_blob(digest, raw)
        if not reference.startswith("sha256:"):
            self.tag(digest, media_type, len(raw), reference)
        else:
            atomic_write_bytes(self.root / LAYOUT_FILE, LAYOUT_DOC)
        return digest


def write_layout(root: str | Path, artifact: Artifact, tag: str) -> str:
    """Add ``artifact`` under ``tag`` (replacing an older entry with that tag). Returns the manifest digest."""
    store = LayoutStore(root)
    for digest, data in artifact.blobs.items():
        store.write_blob(digest, data)
    return store.put_manifest(artifact.manifest_bytes, artifact.media_type, tag)


def layout_tags(root: str | Path) -> list[str]:
    return LayoutStore(root).tags()


def read_layout(root: str | Path, tag: str | None = None) -> Artifact:
    """The artifact tagged ``tag`` (or the only one) in the layout at ``root``; every digest checked."""
    store = LayoutStore(root)
    desc = store.find(tag)
    raw = store.read_blob(str(desc["digest"]))
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise UsageError("manifest blob is not JSON", where=str(root)) from None
    detected = detect_format(manifest, str(desc.get("mediaType") or OCI_MANIFEST), where=f"{root} manifest")
    descs = [manifest["config"], *manifest["layers"]]
    blobs: dict[str, bytes | bytearray] = {d["digest"]: store.read_blob(d["digest"]) for d in descs}
    return Artifact(format=detected.format, manifest=manifest, manifest_bytes=raw, blobs=blobs,
                    declared_media_type=str(desc.get("mediaType") or ""))
