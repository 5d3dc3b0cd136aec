"""Image references: ``[registry/]repository[:tag][@sha256:digest]`` (pure).

Follows the distribution reference grammar. The first path component is the registry when it contains
a ``.`` or ``:`` or is ``localhost``; otherwise the registry is ``docker.io`` (and a one-component
repository gets ``library/``), as Docker, Istio and ASM read references. With neither tag nor digest
the tag is ``latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from meshfilter.errors import UsageError

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_HOST = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
                   r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::[0-9]{1,5})?$")
_HINT = "write it as registry/repository:tag, e.g. localhost:5000/asm_wasm/propagate_header:0.0.1"


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None
    implicit_tag: bool = field(default=False, compare=False, repr=False)  # no tag written: ``latest``

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest when given, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)

    def with_tag(self, tag: str | None) -> Reference:
        return Reference(self.registry, self.repository, tag, None)

    @property
    def repo(self) -> str:
        """``registry/repository``, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def is_registry_host(host: str) -> bool:
    """Whether ``host`` is a registry ``host[:port]`` (a DNS name, an IPv4 address, or ``[IPv6]``)."""
    return bool(_HOST.match(host))


def parse_reference(ref: str, *, where: str = "reference") -> Reference:
    """Parse an image reference; a malformed one raises UsageError (one line, with a hint)."""
    if not isinstance(ref, str) or not ref.strip():
        raise UsageError("image reference is empty", where=where, hint=_HINT)
    if ref != ref.strip() or any(c.isspace() for c in ref):
        raise UsageError(f"image reference {ref!r} contains whitespace", where=where, hint=_HINT)
    if "://" in ref:
        raise UsageError(f"image reference {ref!r} must not have a URL scheme", where=where,
                         hint="drop http:// or https:// (use `plain_http` for HTTP registries)")
    name, digest = ref, None
    if "@" in ref:
        name, _, digest = ref.partition("@")
        if not _DIGEST.match(digest):
            raise UsageError(f"digest {digest!r} is not sha256:<64 lowercase hex>", where=where, hint=_HINT)
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = name.rpartition(":")
        if not _TAG.match(tag):
            raise UsageError(f"tag {tag!r} is invalid (letters, digits, '_', '.', '-', at most 128)",
                             where=where, hint=_HINT)
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"
                           or parts[0].startswith("[")):
        registry, path = parts[0], parts[1:]
        if not _HOST.match(registry):
            raise UsageError(f"registry host {registry!r} is invalid", where=where, hint=_HINT)
    else:
        registry, path = DEFAULT_REGISTRY, parts
        if len(path) == 1:
            path = ["library", *path]
    for comp in path:
        if not _COMPONENT.match(comp):
            raise UsageError(f"repository component {comp!r} is invalid (lowercase letters, digits, "
                             "'.', '_', '-')", where=where, hint=_HINT)
    repository = "/".join(path)
    if len(repository) > 255:
        raise UsageError("repository name is longer than 255 characters", where=where, hint=_HINT)
    implicit = tag is None and digest is None
    if implicit:
        tag = DEFAULT_TAG
    return Reference(registry=registry, repository=repository, tag=tag, digest=digest, implicit_tag=implicit)
