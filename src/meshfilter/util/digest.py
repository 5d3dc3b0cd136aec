"""Content digests: the one sha256 helper (OCI blob digests, WasmPlugin/EnvoyFilter module checksums)."""

from __future__ import annotations

import hashlib

SHA256_PREFIX = "sha256:"


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    """Lowercase hex sha256 of ``data`` (what ``sha256sum`` prints, and Istio's ``sha256`` field)."""
    return hashlib.sha256(data).hexdigest()


def sha256_digest(data: bytes | bytearray | memoryview) -> str:
    """The OCI digest ``sha256:<hex>`` of ``data``."""
    return SHA256_PREFIX + sha256_hex(data)
