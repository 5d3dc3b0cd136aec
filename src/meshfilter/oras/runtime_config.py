"""``runtime-config.json``: the Wasm module's runtime configuration (pure).

The seed (section 2.2) pushes this document as the manifest config of the ASM artifact, wasme lists
it as a layer too, and the compat variant may carry it beside ``plugin.wasm``::

    {"type": "envoy_proxy", "abiVersions": [...], "config": {"rootIds": [...]}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from meshfilter.errors import UsageError

DEFAULT_ABI_VERSIONS: tuple[str, ...] = (
    "v0-541b2c1155fffb15ccde92b8324f3e38f7339ba6",
    "v0-097b7f2e4cc1fb490cc1943d0d633655ac3c522f",
    "v0-4689a30309abf31aee9ae36e73d34b1bb182685f",
    "v0.2.1",
)
DEFAULT_TYPE = "envoy_proxy"


@dataclass(frozen=True)
class RuntimeConfig:
    root_ids: tuple[str, ...]
    abi_versions: tuple[str, ...] = DEFAULT_ABI_VERSIONS
    type: str = DEFAULT_TYPE
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "abiVersions": list(self.abi_versions),
                               "config": {"rootIds": list(self.root_ids)}}
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out

    def to_bytes(self) -> bytes:
        """Canonical bytes (indent 2, trailing newline): deterministic, so digests are stable."""
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode()


def build_runtime_config(root_ids: list[str] | tuple[str, ...],
                         abi_versions: list[str] | tuple[str, ...] | None = None,
                         type: str = DEFAULT_TYPE) -> RuntimeConfig:
    for rid in root_ids:
        if not isinstance(rid, str) or any(c.isspace() for c in rid):
            raise UsageError(f"root id {rid!r} contains whitespace", where="root_id",
                             hint="give root ids exactly as the filter registers them")
    abis = tuple(abi_versions) if abi_versions else DEFAULT_ABI_VERSIONS
    for v in abis:
        if not v or "," in v or any(c.isspace() for c in v):
            raise UsageError(f"ABI version {v!r} is empty or contains ',' or whitespace",
                             where="abi_version", hint="e.g. `abi_version` v0.2.1")
    return RuntimeConfig(root_ids=tuple(root_ids), abi_versions=abis, type=type)


def parse_runtime_config(data: bytes | str, *, where: str = "runtime-config.json") -> RuntimeConfig:
    """Parse and check a runtime-config.json document; a problem is one UsageError line."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"not valid JSON ({exc})", where=where,
                         hint="write it with 'meshfilter oras runtime-config'") from None
    if not isinstance(doc, dict):
        raise UsageError("top level must be a JSON object", where=where)
    typ = doc.get("type", DEFAULT_TYPE)
    abis = doc.get("abiVersions", list(DEFAULT_ABI_VERSIONS))
    cfg = doc.get("config", {})
    if not isinstance(typ, str):
        raise UsageError("'type' must be a string", where=where, hint='use "envoy_proxy"')
    if not isinstance(abis, list) or not all(isinstance(a, str) for a in abis):
        raise UsageError("'abiVersions' must be a list of strings", where=where)
    if not isinstance(cfg, dict):
        raise UsageError("'config' must be an object", where=where, hint='{"rootIds": ["my_root"]}')
    roots = cfg.get("rootIds", [])
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise UsageError("'config.rootIds' must be a list of strings", where=where)
    extra = {k: v for k, v in doc.items() if k not in ("type", "abiVersions", "config")}
    return RuntimeConfig(root_ids=tuple(roots), abi_versions=tuple(abis), type=typ, extra=extra)
