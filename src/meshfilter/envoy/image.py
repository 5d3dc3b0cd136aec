"""A minimal Envoy image, built locally: FROM scratch + the Envoy binary + the shared libraries it links.

The build context is a tar assembled here (``Dockerfile`` plus ``rootfs/``) and sent through the docker
SDK's ``images.build(custom_context=True)``, so it works against Docker and Podman alike and needs no
base image from a registry. The libraries come from the binary's ELF dependencies
(:mod:`meshfilter.envoy.elfdeps`). The image is tagged ``localhost/meshfilter/envoy:<envoy version>``
and labelled with the binary's GNU build ID, so a cached image is reused only for the same binary.
"""

from __future__ import annotations

import fcntl
import io
import os
import re
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from meshfilter.envoy.binary import find_envoy
from meshfilter.envoy.elfdeps import Closure, resolve
from meshfilter.errors import ContainerError

IMAGE_REPO = "localhost/meshfilter/envoy"
ENVOY_IN_IMAGE = "/usr/local/bin/envoy"
LABEL_BUILD_ID = "io.meshfilter.envoy.build-id"
LABEL_IMAGE = "io.meshfilter.image"  # not ".managed": containers inherit image labels


@dataclass(frozen=True)
class ImageInfo:
    ref: str
    id: str
    built: bool  # False when an existing image was reused
    build_id: str | None = None


def default_tag(binary: str | os.PathLike[str] | None = None) -> str:
    return f"{IMAGE_REPO}:{version_of(find_envoy(binary))}"


@lru_cache(maxsize=8)
def version_of(binary: Path) -> str:
    """Envoy's version (e.g. '1.40.0'), from the text after 'version:' in ``envoy --version``."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"version:\s*\S*?/(\d+\.\d+\.\d+[^/\s]*)/", out)
    return m.group(1) if m else "unknown"


def dockerfile(closure: Closure) -> str:
    """The Dockerfile of the minimal image (pure)."""
    ld_path = ":".join(closure.search_dirs())
    lines = ["FROM scratch", "COPY rootfs/ /"]
    if ld_path:
        lines.append(f"ENV LD_LIBRARY_PATH={ld_path}")
    lines.append(f'ENTRYPOINT ["{ENVOY_IN_IMAGE}"]')
    return "\n".join(lines) + "\n"


def context_members(binary: Path, closure: Closure) -> list[tuple[str, Path]]:
    """(path inside rootfs, host file) pairs: the binary, the interpreter, every library (pure)."""
    members: list[tuple[str, Path]] = [(ENVOY_IN_IMAGE, binary.resolve())]
    if closure.interpreter is not None:
        members.append((str(closure.interpreter.path), closure.interpreter.real))
    for lib in closure.libraries:
        members.append((str(lib.path), lib.real))
    seen: set[str] = set()
    unique = []
    for dest, src in members:
        if dest not in seen:
            seen.add(dest)
            unique.append((dest, src))
    return unique


def write_context(fileobj: Any, binary: Path, closure: Closure) -> None:
    """Write the build context tar (Dockerfile + rootfs/) to ``fileobj``."""
    with tarfile.open(fileobj=fileobj, mode="w") as tar:
        df = dockerfile(closure).encode()
        ti = tarfile.TarInfo("Dockerfile")
        ti.size, ti.mode = len(df), 0o644
        tar.addfile(ti, io.BytesIO(df))
        tmp = tarfile.TarInfo("rootfs/tmp")
        tmp.type, tmp.mode = tarfile.DIRTYPE, 0o1777
        tar.addfile(tmp)
        for dest, src in context_members(binary, closure):
            info = tar.gettarinfo(str(src), arcname="rootfs" + dest)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o755
            with open(src, "rb") as fh:
                tar.addfile(info, fh)


def find_image(client: Any, ref: str) -> Any | None:
    from docker.errors import ImageNotFound

    try:
        return client.images.get(ref)
    except ImageNotFound:
        return None


def build_image(client: Any, *, tag: str | None = None,
                binary: str | os.PathLike[str] | None = None) -> ImageInfo:
    """Build the minimal Envoy image and tag it. Raises ContainerError with the build log's last line."""
    from docker.errors import APIError, BuildError

    envoy = find_envoy(binary)
    closure = resolve(envoy)
    ref = tag or default_tag(envoy)
    labels = {LABEL_IMAGE: "envoy-minimal"}
    if closure.binary.build_id:
        labels[LABEL_BUILD_ID] = closure.binary.build_id
    with tempfile.TemporaryFile(prefix="meshfilter-image-") as ctx:
        write_context(ctx, envoy, closure)
        ctx.seek(0)
        try:
            image, _log = client.images.build(fileobj=ctx, custom_context=True, tag=ref, rm=True,
                                              forcerm=True, labels=labels)
        except BuildError as exc:
            last = [str(c.get("stream", c.get("error", ""))).strip() for c in exc.build_log]
            raise ContainerError(f"image build failed: {exc.msg}", where=ref,
                                 hint=f"last build output: {[x for x in last if x][-1:]}") from None
        except APIError as exc:
            raise ContainerError(f"image build failed: {exc.explanation or exc}", where=ref,
                                 hint="check the engine's log (see docs/container.md)") from None
    return ImageInfo(ref=ref, id=image.id, built=True, build_id=closure.binary.build_id)


def ensure_image(client: Any, *, image: str | None = None, tag: str | None = None,
                 binary: str | os.PathLike[str] | None = None, rebuild: bool = False) -> ImageInfo:
    """The image to run Envoy from.

    With ``image``: that existing image (pulled if it is not present). Otherwise the minimal image
    ``tag`` (default ``localhost/meshfilter/envoy:<version>``), built if missing, if it was built from
    another binary (build-ID label differs), or when ``rebuild``.
    """
    from docker.errors import APIError, ImageNotFound

    if image:
        found = find_image(client, image)
        if found is None:
            try:
                found = client.images.pull(image)
            except (APIError, ImageNotFound) as exc:
                raise ContainerError(f"image not present and cannot be pulled: {exc.explanation or exc}",
                                     where=image, hint="load it first, or drop `image` to build "
                                     "the local minimal image") from None
        return ImageInfo(ref=image, id=found.id, built=False)
    envoy = find_envoy(binary)
    ref = tag or default_tag(envoy)
    if not rebuild and (cached := _cached(client, ref, envoy)) is not None:
        return cached
    # One build per tag at a time on this host: concurrent test processes wait, then reuse it.
    lock_path = Path(tempfile.gettempdir()) / f"meshfilter-image-{re.sub(r'[^A-Za-z0-9_.-]', '_', ref)}.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not rebuild and (cached := _cached(client, ref, envoy)) is not None:
                return cached
            return build_image(client, tag=ref, binary=envoy)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _cached(client: Any, ref: str, envoy: Path) -> ImageInfo | None:
    found = find_image(client, ref)
    if found is None:
        return None
    want = _build_id(envoy)
    have = (found.labels or {}).get(LABEL_BUILD_ID)
    if want is None or have == want:
        return ImageInfo(ref=ref, id=found.id, built=False, build_id=have)
    return None


def _build_id(binary: Path) -> str | None:
    from meshfilter.envoy.elfdeps import read_elf

    try:
        return read_elf(binary).build_id
    except (OSError, ContainerError):
        return None
