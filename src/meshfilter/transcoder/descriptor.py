"""Read a FileDescriptorSet: its services, their methods and HTTP rules; select services like
grpc-transcoder does (``--proto_pkg`` package prefixes, ``--proto_svc`` regexes on the short name).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from google.api import annotations_pb2  # registers the google.api.http extension before parsing
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

from meshfilter.errors import TranscoderError, UsageError

_HTTP_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class HttpRule:
    verb: str  # GET, POST, ... or the custom kind
    path: str
    body: str = ""


@dataclass(frozen=True)
class MethodInfo:
    name: str
    full_name: str  # package.Service.method
    input_type: str
    output_type: str
    client_streaming: bool = False
    server_streaming: bool = False
    http: tuple[HttpRule, ...] = ()

    @property
    def grpc_path(self) -> str:
        service, _, method = self.full_name.rpartition(".")
        return f"/{service}/{method}"


@dataclass(frozen=True)
class ServiceInfo:
    full_name: str
    package: str
    name: str
    file: str
    methods: tuple[MethodInfo, ...] = field(default_factory=tuple)


def load_descriptor_set(data: bytes, *, where: str = "descriptor") -> descriptor_pb2.FileDescriptorSet:
    """Parse and sanity-check a serialized FileDescriptorSet (imports must be included)."""
    try:
        fds = descriptor_pb2.FileDescriptorSet.FromString(data)
    except DecodeError as exc:
        raise TranscoderError(f"not a FileDescriptorSet ({exc})", where=where,
                              hint="build it with protoc --include_imports --descriptor_set_out=... "
                                   "or pass `proto` FILE.proto") from None
    if not fds.file:
        raise TranscoderError("the descriptor set holds no files", where=where,
                              hint="build it with protoc --include_imports --descriptor_set_out=... "
                                   "or pass `proto` FILE.proto")
    names = {f.name for f in fds.file}
    missing = sorted({d for f in fds.file for d in f.dependency if d not in names})
    if missing:
        raise TranscoderError(f"the descriptor set lacks imported files: {', '.join(missing)}", where=where,
                              hint="rebuild it with protoc --include_imports (Envoy needs every import)")
    return fds


def read_descriptor_file(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise UsageError(f"descriptor file {path!r} does not exist", where="descriptor",
                         hint="pass the file written by protoc --descriptor_set_out, or use `proto`") from None
    except OSError as exc:
        raise UsageError(f"cannot read descriptor file {path!r}: {exc.strerror}", where="descriptor",
                         hint="check the path and its permissions") from None


def _http_rules(method: descriptor_pb2.MethodDescriptorProto) -> tuple[HttpRule, ...]:
    if not method.HasField("options") or not method.options.HasExtension(annotations_pb2.http):
        return ()
    rule = method.options.Extensions[annotations_pb2.http]
    out: list[HttpRule] = []
    for r in [rule, *rule.additional_bindings]:
        kind = r.WhichOneof("pattern")
        if kind is None:
            continue
        if kind == "custom":
            out.append(HttpRule(r.custom.kind.upper(), r.custom.path, r.body))
        elif kind in _HTTP_VERBS:
            out.append(HttpRule(kind.upper(), getattr(r, kind), r.body))
    return tuple(out)


def list_services(fds: descriptor_pb2.FileDescriptorSet) -> list[ServiceInfo]:
    """Every service in the set, in file order."""
    services: list[ServiceInfo] = []
    for f in fds.file:
        for s in f.service:
            full = f"{f.package}.{s.name}" if f.package else s.name
            methods = tuple(
                MethodInfo(name=m.name, full_name=f"{full}.{m.name}", input_type=m.input_type.lstrip("."),
                           output_type=m.output_type.lstrip("."), client_streaming=m.client_streaming,
                           server_streaming=m.server_streaming, http=_http_rules(m))
                for m in s.method)
            services.append(ServiceInfo(full_name=full, package=f.package, name=s.name, file=f.name,
                                        methods=methods))
    return services


def split_values(values: Sequence[str] | None) -> list[str]:
    """grpc-transcoder's string-slice flags: repeatable, and each value may be comma-separated."""
    return [v.strip() for raw in values or [] for v in raw.split(",") if v.strip()]


def _package_matches(package: str, prefix: str) -> bool:
    prefix = prefix.rstrip(".")
    return package == prefix or package.startswith(prefix + ".")


def select_services(fds: descriptor_pb2.FileDescriptorSet, packages: Sequence[str] = (),
                    patterns: Sequence[str] = (), *, where: str = "descriptor") -> list[ServiceInfo]:
    """Services whose package starts with one of ``packages`` (dotted prefix) and whose short name
    matches (``re.search``, unanchored like grpc-transcoder) one of ``patterns``; an empty filter
    matches everything. Sorted by full name. None found → TranscoderError listing what exists."""
    regexes = []
    for p in patterns:
        try:
            regexes.append(re.compile(p))
        except re.error as exc:
            raise UsageError(f"`proto_svc` {p!r} is not a valid regular expression ({exc})",
                             where="proto_svc", hint="escape special characters, e.g. '^LandingService$'"
                             ) from None
    available = list_services(fds)
    chosen = [s for s in available
              if (not packages or any(_package_matches(s.package, p) for p in packages))
              and (not regexes or any(r.search(s.name) for r in regexes))]
    if not chosen:
        wanted = " ".join([*(f"`proto_pkg` {p}" for p in packages), *(f"`proto_svc` {p}" for p in patterns)])
        if not available:
            raise TranscoderError("the descriptor set defines no services", where=where,
                                  hint="compile the .proto that declares the service")
        names = ", ".join(sorted(s.full_name for s in available))
        raise TranscoderError(f"no service matches {wanted or 'the filters'}", where=where,
                              hint=f"available services: {names}")
    return sorted(chosen, key=lambda s: s.full_name)


def unannotated_warnings(services: Sequence[ServiceInfo]) -> list[str]:
    """One warning per method without a google.api.http annotation, suggesting auto_mapping."""
    out = []
    for s in services:
        for m in s.methods:
            if not m.http:
                out.append(f"{m.full_name} has no google.api.http annotation: it is not reachable over "
                           f"HTTP/JSON (hint: add an option (google.api.http), or pass `auto_mapping` to "
                           f"map it to POST {m.grpc_path})")
    return out
