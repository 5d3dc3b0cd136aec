"""Copy an artifact between stores: registry to registry, registry to an OCI layout, layout to registry.

Any manifest is copied as its exact bytes (so the digest stays), an image index with every manifest it
lists (by digest), each image manifest with its config and layers. Every blob is digest-checked as it is
read (:meth:`RegistryClient.fetch_blob` hashes while streaming; :meth:`LayoutStore.read_blob` hashes the
file) and again by the destination registry on its final PUT. Blobs the destination already has are
skipped. Blobs go through memory one at a time. The tag is written last: an interrupted copy leaves none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from meshfilter.errors import NotWasmArtifactError
from meshfilter.oras.client import PushStats
from meshfilter.oras.formats import is_index, validate_index, validate_manifest
from meshfilter.util.digest import sha256_digest


class Source(Protocol):
    def fetch_manifest(self, reference: str | None) -> tuple[bytes, str]: ...
    def get_blob(self, desc: dict[str, Any]) -> bytes: ...


class Target(Protocol):
    def has_blob(self, desc: dict[str, Any]) -> bool: ...
    def put_blob(self, desc: dict[str, Any], data: bytes, stats: PushStats) -> None: ...
    def put_manifest(self, raw: bytes, media_type: str, reference: str) -> str: ...


@dataclass
class CopyStats(PushStats):
    bytes_copied: int = 0


def _blobs_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for d in [doc["config"], *doc["layers"]]:
        if d["digest"] not in seen:
            seen.add(d["digest"])
            out.append(d)
    return out


def _copy_manifest(src: Source, dst: Target, raw: bytes, media_type: str, reference: str, stats: CopyStats,
                   *, where: str, depth: int = 0) -> str:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise NotWasmArtifactError("manifest is not JSON", where=where) from None
    if is_index(doc, media_type):
        if depth > 1:
            raise NotWasmArtifactError("image index nested more than once", where=where)
        for child in validate_index(doc, where=where):
            child_raw, _ = src.fetch_manifest(child["digest"])
            if sha256_digest(child_raw) != child["digest"]:
                raise NotWasmArtifactError(f"index entry {child['digest']} does not match its manifest", where=where)
            _copy_manifest(src, dst, child_raw, child["mediaType"], child["digest"], stats,
                           where=f"{where} {child['digest'][:19]}", depth=depth + 1)
    else:
        validate_manifest(doc, where=where)
        for desc in _blobs_of(doc):
            if dst.has_blob(desc):
                stats.skipped += 1
                continue
            data = src.get_blob(desc)
            dst.put_blob(desc, data, stats)
            stats.uploaded += 1
            stats.bytes_copied += len(data)
    digest = dst.put_manifest(raw, media_type, reference)
    stats.manifests += 1
    return digest


def copy_artifact(src: Source, src_reference: str | None, dst: Target, dst_reference: str, *,
                  stats: CopyStats | None = None, where: str = "source") -> str:
    """Copy what ``src_reference`` names in ``src`` to ``dst`` under ``dst_reference`` (a tag or the same
    digest). Returns the manifest digest, which is the source's."""
    stats = stats if stats is not None else CopyStats()
    raw, media_type = src.fetch_manifest(src_reference)
    return _copy_manifest(src, dst, raw, media_type, dst_reference, stats, where=where)
