"""Wasm OCI artifact formats: manifest/config/layer builders, index selection and detection (pure).

Formats (``format``):

* ``asm``    – what the seed's ``oras push`` produces: config ``application/vnd.module.wasm.config.v1+json``
  (runtime-config.json), ONE layer ``application/vnd.module.wasm.content.layer.v1+wasm`` carrying the
  ``org.opencontainers.image.title`` annotation. ASM's node cache pulls it; Istio does not (it wants 2 layers).
* ``wasme``  – solo.io's "oci" variant: the same config descriptor also listed as a layer, plus the wasm
  layer (exactly two layers), manifest annotations ``module.wasm.runtime/abi_version`` (comma-joined)
  and ``module.wasm.runtime/type``.
* ``compat`` – OCI image whose (last) ``application/vnd.oci.image.layer.v1.tar+gzip`` layer holds
  ``plugin.wasm`` (and ``runtime-config.json``); manifest annotation ``module.wasm.image/variant: compat``.
* ``docker`` – Docker schema 2 image; last layer ``application/vnd.docker.image.rootfs.diff.tar.gzip``
  holding ``plugin.wasm``.
* ``cncf``   – the CNCF TAG Runtime "Wasm OCI Artifact layout": config ``application/vnd.wasm.config.v0+json``
  (``architecture: wasm``, ``os: wasip1``, ``layerDigests``), one ``application/wasm`` layer, artifact type
  ``application/vnd.wasm.module.v1+wasm``.

Reading follows Istio's agent (``pkg/wasm/imagefetcher.go``; go-containerregistry underneath):

1. an image index (OCI or Docker manifest list) resolves to its ``linux/amd64`` manifest (a child without
   a platform counts as linux/amd64, as in go-containerregistry), or to its only manifest
   (:func:`select_manifest`);
2. :func:`detect_format`: a Docker schema 2 image (module = ``plugin.wasm`` in the LAST layer, which must be
   ``...rootfs.diff.tar.gzip``), then an OCI image whose last layer is ``tar+gzip`` (compat; any number of
   layers, istio/istio#40647), then the two-layer wasme/oci variant; then what Istio does not read: the
   seed's single-layer ``asm`` and the CNCF layout;
3. :func:`extract`: in a tar layer, ``plugin.wasm`` (Istio matches the base name), else the only ``.wasm``
   file; what was left aside is reported in notes.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from dataclasses import dataclass, field
from typing import Any

from meshfilter.errors import NotWasmArtifactError, UsageError
from meshfilter.oras.runtime_config import RuntimeConfig, parse_runtime_config
from meshfilter.util.digest import sha256_digest

FORMATS = ("asm", "wasme", "compat", "docker", "cncf")

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
CNCF_CONFIG = "application/vnd.wasm.config.v0+json"
CNCF_LAYER = "application/wasm"
CNCF_ARTIFACT_MODULE = "application/vnd.wasm.module.v1+wasm"
CNCF_ARTIFACT_COMPONENT = "application/vnd.wasm.component.v1+wasm"

ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_ABI = "module.wasm.runtime/abi_version"
ANNOTATION_TYPE = "module.wasm.runtime/type"
ANNOTATION_VARIANT = "module.wasm.image/variant"

IMAGE_MEDIA_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_MEDIA_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST)
WASM_MAGIC = b"\0asm"
PLUGIN_FILE = "plugin.wasm"
RUNTIME_CONFIG_FILE = "runtime-config.json"
EPOCH = "1970-01-01T00:00:00Z"  # every timestamp we write: same input, same digests
ISTIO_PLATFORM = ("linux", "amd64")

__all__ = ["FORMATS", "Artifact", "Detected", "Extracted", "IndexChoice", "build_artifact", "check_module",
           "descriptor", "detect_format", "extract", "extract_module", "is_index", "runtime_config_of",
           "select_manifest", "serialize_manifest", "sha256_digest", "validate_index", "validate_manifest"]


def descriptor(media_type: str, data: bytes | bytearray, annotations: dict[str, str] | None = None, *,
               digest: str | None = None) -> dict[str, Any]:
    """The OCI descriptor of ``data``; ``digest``: its sha256 digest when the caller already has it."""
    d: dict[str, Any] = {"mediaType": media_type, "digest": digest or sha256_digest(data), "size": len(data)}
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
    blobs: dict[str, bytes | bytearray] = field(repr=False)
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


def check_module(module: bytes | bytearray, *, where: str) -> None:
    if not module.startswith(WASM_MAGIC):
        raise UsageError("not a Wasm module (no \\0asm magic)", where=where,
                         hint="build one with 'meshfilter wasm build'")


def _tar_gz(files: list[tuple[str, bytes | bytearray]]) -> tuple[bytes, bytes]:
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
    cfg = {"architecture": "amd64", "os": "linux", "created": EPOCH, "config": {},
           "rootfs": {"type": "layers", "diff_ids": [diff_id]},
           "history": [{"created": EPOCH, "created_by": "meshfilter oras push"}]}
    return json.dumps(cfg, separators=(",", ":")).encode()


def _cncf_config(layer_digest: str) -> bytes:
    """The CNCF layout's config: a core module (wasip1: proxy-wasm modules are not components)."""
    cfg = {"created": EPOCH, "architecture": "wasm", "os": "wasip1", "layerDigests": [layer_digest]}
    return json.dumps(cfg, separators=(",", ":")).encode()


def build_artifact(fmt: str, module: bytes | bytearray, *, runtime_config: bytes | None,
                   title: str = PLUGIN_FILE, annotations: dict[str, str] | None = None,
                   module_digest: str | None = None) -> Artifact:
    """Build the artifact for ``fmt``. ``runtime_config`` is the exact runtime-config.json bytes;
    ``module_digest``: the module's sha256 digest when the caller has it (from
    :func:`~meshfilter.util.digest.read_with_digest`), so a large module is not hashed twice."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", where="format", hint="use one of " + ", ".join(FORMATS))
    check_module(module, where="module")
    user = dict(annotations or {})
    rc: RuntimeConfig | None = None
    if runtime_config is not None:
        if fmt == "cncf":
            raise UsageError("the CNCF Wasm layout has no place for a runtime config (root ids, ABI versions)",
                             where="runtime_config", hint="drop `root_id`/`runtime_config`, or use `format` wasme")
        rc = parse_runtime_config(runtime_config)
    elif fmt in ("asm", "wasme"):
        raise UsageError(f"format {fmt} needs a runtime config", where="root_id",
                         hint="pass `root_id` ID (and `abi_version`) or `runtime_config` FILE")
    blobs: dict[str, bytes | bytearray] = {}

    def add(media_type: str, data: bytes | bytearray, ann: dict[str, str] | None = None) -> dict[str, Any]:
        d = descriptor(media_type, data, ann, digest=module_digest if data is module else None)
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
    elif fmt == "cncf":
        layer = descriptor(CNCF_LAYER, module, {ANNOTATION_TITLE: title}, digest=module_digest)
        manifest["artifactType"] = CNCF_ARTIFACT_MODULE
        manifest["config"] = add(CNCF_CONFIG, _cncf_config(layer["digest"]))
        blobs[layer["digest"]] = module
        manifest["layers"] = [layer]
    else:  # docker
        if user:
            raise UsageError("Docker schema 2 manifests cannot carry annotations", where="annotation",
                             hint="drop `annotation` or use `format` compat")
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


def is_index(doc: Any, media_type: str | None = None) -> bool:
    """Whether a fetched manifest document is an image index / manifest list."""
    if not isinstance(doc, dict):
        return False
    mt = doc.get("mediaType") or media_type
    return mt in INDEX_MEDIA_TYPES or ("manifests" in doc and "layers" not in doc)


def validate_manifest(manifest: Any, *, where: str = "manifest") -> None:
    """Structural check of an image manifest (before sending, and after fetching)."""
    if not isinstance(manifest, dict):
        raise NotWasmArtifactError("manifest is not a JSON object", where=where)
    if is_index(manifest):
        raise NotWasmArtifactError("reference names an image index, not a single Wasm artifact",
                                   where=where, hint="select one of its manifests (select_manifest)")
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


def validate_index(index: Any, *, where: str = "index") -> list[dict[str, Any]]:
    """Structural check of an image index; returns its manifest descriptors."""
    if not isinstance(index, dict) or index.get("schemaVersion") != 2:
        raise NotWasmArtifactError("image index is not a schemaVersion 2 JSON object", where=where)
    children = index.get("manifests")
    if not isinstance(children, list):
        raise NotWasmArtifactError("image index has no manifests list", where=where)
    for i, child in enumerate(children):
        _check_descriptor(child, f"{where}.manifests[{i}]")
        plat = child.get("platform")
        if plat is not None and not isinstance(plat, dict):
            raise NotWasmArtifactError("platform is not an object", where=f"{where}.manifests[{i}]")
    return children


def platform_of(desc: dict[str, Any]) -> str:
    """``os/architecture[/variant]`` of an index entry, or "" when it names no platform."""
    plat = desc.get("platform")
    if not isinstance(plat, dict):
        return ""
    return "/".join(str(p) for p in (plat.get("os"), plat.get("architecture"), plat.get("variant")) if p)


@dataclass(frozen=True)
class IndexChoice:
    """The manifest an image index resolves to, and why (for the note the user sees)."""

    descriptor: dict[str, Any]
    platform: str      # the chosen entry's platform ("" when it names none)
    reason: str        # "linux/amd64" (Istio's choice) or "only" (the index's only manifest)
    count: int         # manifests in the index

    def note(self, index_ref: str) -> str:
        plat = self.platform or "no platform given"
        why = (f"took the linux/amd64 manifest ({plat})" if self.reason == "linux/amd64" else
               f"took its only manifest ({plat})")
        return f"{index_ref} is an image index of {self.count} manifest(s): {why}, {self.descriptor['digest']}"


def select_manifest(index: dict[str, Any], *, where: str = "index") -> IndexChoice:
    """Istio's choice in an image index: the first linux/amd64 entry (an entry without a platform counts
    as linux/amd64, as go-containerregistry reads it), else the only entry."""
    children = validate_index(index, where=where)
    for child in children:
        plat = child.get("platform")
        if plat is None or (plat.get("os"), plat.get("architecture")) == ISTIO_PLATFORM:
            choice = IndexChoice(child, platform_of(child), "linux/amd64", len(children))
            break
    else:
        if len(children) != 1:
            found = ", ".join(platform_of(c) or "?" for c in children) or "none"
            raise NotWasmArtifactError(f"image index has no linux/amd64 manifest (platforms: {found})",
                                       where=where, hint="push a linux/amd64 manifest, or pull one platform's "
                                                         "manifest by its digest")
        choice = IndexChoice(children[0], platform_of(children[0]), "only", 1)
    if choice.descriptor["mediaType"] not in IMAGE_MEDIA_TYPES:
        raise NotWasmArtifactError(f"the chosen index entry is {choice.descriptor['mediaType']}, not an image "
                                   "manifest", where=where, hint="nested indexes are not read (neither does Istio)")
    return choice


@dataclass(frozen=True)
class Detected:
    format: str                 # asm | wasme | compat | docker | cncf
    wasm_layer: dict[str, Any]  # descriptor of the layer holding the module
    packed: bool                # True: layer is tar+gzip holding plugin.wasm
    other_layers: tuple[dict[str, Any], ...] = ()  # layers of a docker/compat image left aside

    def notes(self) -> list[str]:
        if not self.other_layers:
            return []
        n = len(self.other_layers) + 1
        ignored = ", ".join(f"{d['digest'][:19]} ({d['size']} bytes)" for d in self.other_layers)
        return [f"the module comes from the last of {n} layers ({self.wasm_layer['digest'][:19]}); "
                f"ignored layers: {ignored}"]


def detect_format(manifest: dict[str, Any], media_type: str | None = None, *, where: str = "manifest") -> Detected:
    """Istio's order: docker schema 2, OCI compat, two-layer (wasme/oci); then the seed's single layer and the
    CNCF layout."""
    validate_manifest(manifest, where=where)
    mt = manifest.get("mediaType") or media_type or OCI_MANIFEST
    layers: list[dict[str, Any]] = manifest["layers"]
    types = [x["mediaType"] for x in layers]
    if mt == DOCKER_MANIFEST:
        if layers and layers[-1]["mediaType"] == DOCKER_LAYER_TAR_GZIP:
            return Detected("docker", layers[-1], True, tuple(layers[:-1]))
        raise NotWasmArtifactError(f"Docker image whose last layer is not {DOCKER_LAYER_TAR_GZIP} "
                                   f"(layers: {types})", where=where)
    if mt != OCI_MANIFEST:
        raise NotWasmArtifactError(f"unsupported manifest media type {mt!r}", where=where)
    if layers and types[-1] == OCI_LAYER_TAR_GZIP:
        return Detected("compat", layers[-1], True, tuple(layers[:-1]))
    if len(layers) == 2 and WASM_LAYER in types:
        return Detected("wasme", layers[types.index(WASM_LAYER)], False)
    if len(layers) == 1 and types[0] == WASM_LAYER:
        return Detected("asm", layers[0], False)
    if manifest["config"]["mediaType"] == CNCF_CONFIG or manifest.get("artifactType") in (
            CNCF_ARTIFACT_MODULE, CNCF_ARTIFACT_COMPONENT):
        wasm = [x for x in layers if x["mediaType"] == CNCF_LAYER]
        if len(wasm) == 1:
            return Detected("cncf", wasm[0], False)
        raise NotWasmArtifactError(f"CNCF Wasm artifact with {len(wasm)} {CNCF_LAYER} layers (layers: {types})",
                                   where=where, hint="meshfilter reads artifacts holding exactly one module")
    raise NotWasmArtifactError(f"not a Wasm artifact: {len(layers)} layer(s) with media types {types}",
                               where=where, hint="expected a docker, compat, wasme, asm or cncf Wasm image")


def _untar(gz: bytes, *, where: str) -> dict[str, bytes]:
    """The regular files of a tar+gzip layer, by path (archive order kept)."""
    try:
        raw = gzip.decompress(gz)
        out: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
            for m in tf.getmembers():
                if m.isfile():
                    fh = tf.extractfile(m)
                    if fh is not None:
                        name = m.name
                        while name.startswith(("./", "/")):
                            name = name[1:] if name.startswith("/") else name[2:]
                        out.setdefault(name, fh.read())
        return out
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise NotWasmArtifactError(f"layer is not a gzip tar ({exc})", where=where) from None


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _find(files: dict[str, bytes], name: str) -> str | None:
    return next((path for path in files if _basename(path) == name), None)


@dataclass(frozen=True)
class Extracted:
    module: bytes
    member: str | None                 # the tar member it came from; None for a raw wasm layer
    notes: tuple[str, ...] = ()        # what was left aside, for the user


def extract(detected: Detected, layer: bytes, *, where: str = "wasm layer") -> Extracted:
    """The module from the detected wasm layer: raw, or ``plugin.wasm`` (else the only ``.wasm``) of a tar."""
    notes = list(detected.notes())
    member = None
    if detected.packed:
        files = _untar(layer, where=where)
        wasm_files = [p for p in files if p.endswith(".wasm")]
        member = _find(files, PLUGIN_FILE)
        if member is None:
            if len(wasm_files) != 1:
                found = ", ".join(wasm_files) or "no .wasm file"
                raise NotWasmArtifactError(f"layer has no {PLUGIN_FILE} ({found})", where=where,
                                           hint="a compat/docker Wasm image holds the module as plugin.wasm")
            member = wasm_files[0]
            notes.append(f"the layer has no {PLUGIN_FILE}: took its only .wasm file, {member}")
        others = [p for p in wasm_files if p != member]
        if others:
            notes.append(f"took {member}; other .wasm files in the layer left aside: {', '.join(others)}")
        layer = files[member]
    if not layer.startswith(WASM_MAGIC):
        raise NotWasmArtifactError("layer content is not a Wasm module (no \\0asm magic)", where=where)
    return Extracted(layer, member, tuple(notes))


def extract_module(detected: Detected, layer: bytes, *, where: str = "wasm layer") -> bytes:
    """The module bytes from the detected wasm layer (see :func:`extract`)."""
    return extract(detected, layer, where=where).module


def runtime_config_of(detected: Detected, manifest: dict[str, Any], config: bytes | None,
                      layer: bytes | None) -> RuntimeConfig | None:
    """Root ids / ABI versions, where the format keeps them (config blob, or runtime-config.json in tar)."""
    try:
        if detected.format in ("asm", "wasme") and manifest["config"]["mediaType"] == WASM_CONFIG \
                and config is not None:
            return parse_runtime_config(config, where="config blob")
        if detected.format in ("compat", "docker") and layer is not None:
            files = _untar(layer, where="layer")
            found = _find(files, RUNTIME_CONFIG_FILE)
            if found is not None:
                return parse_runtime_config(files[found], where=f"layer {RUNTIME_CONFIG_FILE}")
    except UsageError:
        return None
    ann = manifest.get("annotations") or {}
    if ANNOTATION_ABI in ann:
        return RuntimeConfig(root_ids=(), abi_versions=tuple(ann[ANNOTATION_ABI].split(",")),
                             type=ann.get(ANNOTATION_TYPE, "envoy_proxy"))
    return None
