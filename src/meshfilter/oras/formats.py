"""Wasm OCI artifact formats: manifest/config/layer builders and detection (pure).

Formats (``--format``):

* ``asm``    – what the seed's ``oras push`` produces: config ``application/vnd.module.wasm.config.v1+json``
  (runtime-config.json), ONE layer ``application/vnd.module.wasm.content.layer.v1+wasm`` carrying the
  ``org.opencontainers.image.title`` annotation. ASM's node cache pulls it; Istio does not (it wants 2 layers).
* ``wasme``  – solo.io's "oci" variant: the same config descriptor also listed as a layer, plus the wasm
  layer (exactly two layers), manifest annotations ``module.wasm.runtime/abi_version`` (comma-joined)
  and ``module.wasm.runtime/type``.
* ``compat`` – OCI image whose single ``application/vnd.oci.image.layer.v1.tar+gzip`` layer holds
  ``plugin.wasm`` (and ``runtime-config.json``); manifest annotation ``module.wasm.image/variant: compat``.
* ``docker`` – Docker schema 2 image; last layer ``application/vnd.docker.image.rootfs.diff.tar.gzip``
  holding ``plugin.wasm``.

:func:`detect_format` follows Istio's WasmPlugin image fetcher order: docker, compat, two-layer, then the
seed's single-layer variant.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from typing import Any

from meshfilter.errors import NotWasmArtifactError, UsageError
from meshfilter.oras.runtime_config import RuntimeConfig, parse_runtime_config

FORMATS = ("asm", "wasme", "compat", "docker")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_TAR_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
WASM_CONFIG = "application/vnd.module.wasm.config.v1+json"
WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"

ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_ABI = "module.wasm.runtime/abi_version"
ANNOTATION_TYPE = "module.wasm.runtime/type"
ANNOTATION_VARIANT = "module.wasm.image/variant"

MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST)
WASM_MAGIC = b"\0asm"
PLUGIN_FILE = "plugin.wasm"
RUNTIME_CONFIG_FILE = "runtime-config.json"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}
    if annotations:
        d["annotations"] = dict(annotations)
    return d


def serialize_manifest(manifest: dict[str, Any]) -> bytes:
    """Compact JSON, key order kept: the bytes whose sha256 is the manifest digest."""
    return json.dumps(manifest, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Artifact:
    """A complete artifact: manifest bytes plus every blob it references (config and layers)."""

    format: str
    manifest: dict[str, Any]
    manifest_bytes: bytes
    blobs: dict[str, bytes] = field(repr=False)
    declared_media_type: str = ""  # from the index/Content-Type when the manifest has no mediaType field

    @property
    def media_type(self) -> str:
        return str(self.manifest.get("mediaType") or self.declared_media_type or OCI_MANIFEST)

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest_bytes)

    def descriptors(self) -> list[dict[str, Any]]:
        """Blob descriptors in upload order (layers, then config), each digest once."""
        seen: set[str] = set()
        out = []
        for d in [*self.manifest["layers"], self.manifest["config"]]:
            if d["digest"] not in seen:
                seen.add(d["digest"])
                out.append(d)
        return out


def check_module(module: bytes, *, where: str) -> None:
    if not module.startswith(WASM_MAGIC):
        raise UsageError("not a Wasm module (no \\0asm magic)", where=where,
                         hint="build one with 'meshfilter wasm build'")


def _tar_gz(files: list[tuple[str, bytes]]) -> tuple[bytes, bytes]:
    """Deterministic tar (mtime 0, root-owned, 0644) and its gzip; returns (tar, tar.gz)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tf.addfile(info, io.BytesIO(data))
    tar = buf.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=6) as g:
        g.write(tar)
    return tar, gz.getvalue()


def _image_config(diff_id: str) -> bytes:
    cfg = {"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z", "config": {},
           "rootfs": {"type": "layers", "diff_ids": [diff_id]},
           "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "meshfilter oras push"}]}
    return json.dumps(cfg, separators=(",", ":")).encode()


def build_artifact(fmt: str, module: bytes, *, runtime_config: bytes | None,
                   title: str = PLUGIN_FILE, annotations: dict[str, str] | None = None) -> Artifact:
    """Build the artifact for ``fmt``. ``runtime_config`` is the exact runtime-config.json bytes."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", where="--format", hint="use one of " + ", ".join(FORMATS))
    check_module(module, where="module")
    user = dict(annotations or {})
    rc: RuntimeConfig | None = None
    if runtime_config is not None:
        rc = parse_runtime_config(runtime_config)
    elif fmt in ("asm", "wasme"):
        raise UsageError(f"format {fmt} needs a runtime config", where="--root-id",
                         hint="pass --root-id ID (and --abi-version) or --runtime-config FILE")
    blobs: dict[str, bytes] = {}

    def add(media_type: str, data: bytes, ann: dict[str, str] | None = None) -> dict[str, Any]:
        d = descriptor(media_type, data, ann)
        blobs[d["digest"]] = data
        return d

    manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if fmt == "asm":
        assert runtime_config is not None
        manifest["config"] = add(WASM_CONFIG, runtime_config)
        manifest["layers"] = [add(WASM_LAYER, module, {ANNOTATION_TITLE: title})]
    elif fmt == "wasme":
        assert runtime_config is not None and rc is not None
        cfg = add(WASM_CONFIG, runtime_config)
        manifest["config"] = cfg
        manifest["layers"] = [dict(cfg), add(WASM_LAYER, module)]
        user = {ANNOTATION_ABI: ",".join(rc.abi_versions), ANNOTATION_TYPE: rc.type, **user}
    elif fmt == "compat":
        files = [(PLUGIN_FILE, module)]
        if runtime_config is not None:
            files.append((RUNTIME_CONFIG_FILE, runtime_config))
        tar, gz = _tar_gz(files)
        manifest["config"] = add(OCI_CONFIG, _image_config(sha256_digest(tar)))
        manifest["layers"] = [add(OCI_LAYER_TAR_GZIP, gz)]
        user = {ANNOTATION_VARIANT: "compat", **user}
    else:  # docker
        if user:
            raise UsageError("Docker schema 2 manifests cannot carry annotations", where="--annotation",
                             hint="drop --annotation or use --format compat")
        tar, gz = _tar_gz([(PLUGIN_FILE, module)])
        manifest["mediaType"] = DOCKER_MANIFEST
        manifest["config"] = add(DOCKER_CONFIG, _image_config(sha256_digest(tar)))
        manifest["layers"] = [add(DOCKER_LAYER_TAR_GZIP, gz)]
    if user:
        manifest["annotations"] = user
    validate_manifest(manifest)
    return Artifact(format=fmt, manifest=manifest, manifest_bytes=serialize_manifest(manifest), blobs=blobs)


def _check_descriptor(d: Any, where: str) -> None:
    if not isinstance(d, dict):
        raise NotWasmArtifactError("descriptor is not an object", where=where)
    if not isinstance(d.get("mediaType"), str) or not isinstance(d.get("size"), int) or d["size"] < 0:
        raise NotWasmArtifactError("descriptor lacks mediaType or a valid size", where=where)
    dg = d.get("digest")
    if not isinstance(dg, str) or not dg.startswith("sha256:") or len(dg) != 71 or \
            any(c not in "0123456789abcdef" for c in dg[7:]):
        raise NotWasmArtifactError(f"descriptor digest {dg!r} is not sha256:<64 hex>", where=where)
    ann = d.get("annotations")
    if ann is not None and (not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values())):
        raise NotWasmArtifactError("annotations must map strings to strings", where=where)


def validate_manifest(manifest: Any, *, where: str = "manifest") -> None:
    """Structural check of an image manifest (before sending, and after fetching)."""
    if not isinstance(manifest, dict):
        raise NotWasmArtifactError("manifest is not a JSON object", where=where)
    mt = manifest.get("mediaType")
    if mt in (OCI_INDEX, DOCKER_MANIFEST_LIST) or "manifests" in manifest:
        raise NotWasmArtifactError("reference names an image index, not a single Wasm artifact",
                                   where=where, hint="point at one platform's manifest by digest")
    if manifest.get("schemaVersion") != 2:
        raise NotWasmArtifactError("manifest schemaVersion is not 2", where=where)
    _check_descriptor(manifest.get("config"), f"{where}.config")
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise NotWasmArtifactError("manifest has no layers list", where=where)
    for i, layer in enumerate(layers):
        _check_descriptor(layer, f"{where}.layers[{i}]")
    ann = manifest.get("annotations")
    if ann is not None and (not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values())):
        raise NotWasmArtifactError("manifest annotations must map strings to strings", where=where)


@dataclass(frozen=True)
class Detected:
    format: str                 # asm | wasme | compat | docker
    wasm_layer: dict[str, Any]  # descriptor of the layer holding the module
    packed: bool                # True: layer is tar+gzip holding plugin.wasm


def detect_format(manifest: dict[str, Any], media_type: str | None = None, *, where: str = "manifest") -> Detected:
    """Istio's order: docker schema 2, OCI compat, two-layer (wasme/oci), then the seed's single layer."""
    validate_manifest(manifest, where=where)
    mt = manifest.get("mediaType") or media_type or OCI_MANIFEST
    layers: list[dict[str, Any]] = manifest["layers"]
    types = [x["mediaType"] for x in layers]
    if mt == DOCKER_MANIFEST:
        if layers and layers[-1]["mediaType"] == DOCKER_LAYER_TAR_GZIP:
            return Detected("docker", layers[-1], True)
        raise NotWasmArtifactError(f"Docker image whose last layer is not {DOCKER_LAYER_TAR_GZIP} "
                                   f"(layers: {types})", where=where)
    if mt != OCI_MANIFEST:
        raise NotWasmArtifactError(f"unsupported manifest media type {mt!r}", where=where)
    if len(layers) == 1 and types[0] == OCI_LAYER_TAR_GZIP:
        return Detected("compat", layers[0], True)
    if len(layers) == 2 and WASM_LAYER in types:
        return Detected("wasme", layers[types.index(WASM_LAYER)], False)
    if len(layers) == 1 and types[0] == WASM_LAYER:
        return Detected("asm", layers[0], False)
    raise NotWasmArtifactError(f"not a Wasm artifact: {len(layers)} layer(s) with media types {types}",
                               where=where, hint="expected a docker, compat, wasme or asm Wasm image")


def _untar(gz: bytes, *, where: str) -> dict[str, bytes]:
    try:
        raw = gzip.decompress(gz)
        out: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
            for m in tf.getmembers():
                if m.isfile():
                    fh = tf.extractfile(m)
                    if fh is not None:
                        out[m.name.lstrip("./")] = fh.read()
        return out
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise NotWasmArtifactError(f"layer is not a gzip tar ({exc})", where=where) from None


def _find(files: dict[str, bytes], name: str) -> bytes | None:
    for path, data in files.items():
        if path == name or path.endswith("/" + name):
            return data
    return None


def extract_module(detected: Detected, layer: bytes, *, where: str = "wasm layer") -> bytes:
    """The module bytes from the detected wasm layer (unpacking plugin.wasm for tar formats)."""
    if detected.packed:
        found = _find(_untar(layer, where=where), PLUGIN_FILE)
        if found is None:
            raise NotWasmArtifactError(f"layer has no {PLUGIN_FILE}", where=where,
                                       hint="a compat/docker Wasm image holds the module as plugin.wasm")
        layer = found
    if not layer.startswith(WASM_MAGIC):
        raise NotWasmArtifactError("layer content is not a Wasm module (no \\0asm magic)", where=where)
    return layer


def runtime_config_of(detected: Detected, manifest: dict[str, Any], config: bytes,
                      layer: bytes | None) -> RuntimeConfig | None:
    """Root ids / ABI versions, where the format keeps them (config blob, or runtime-config.json in tar)."""
    try:
        if detected.format in ("asm", "wasme") and manifest["config"]["mediaType"] == WASM_CONFIG:
            return parse_runtime_config(config, where="config blob")
        if detected.format in ("compat", "docker") and layer is not None:
            found = _find(_untar(layer, where="layer"), RUNTIME_CONFIG_FILE)
            if found is not None:
                return parse_runtime_config(found, where=f"layer {RUNTIME_CONFIG_FILE}")
    except UsageError:
        return None
    ann = manifest.get("annotations") or {}
    if ANNOTATION_ABI in ann:
        return RuntimeConfig(root_ids=(), abi_versions=tuple(ann[ANNOTATION_ABI].split(",")),
                             type=ann.get(ANNOTATION_TYPE, "envoy_proxy"))
    return None
