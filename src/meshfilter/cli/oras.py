"""``meshfilter oras``: package Wasm filters as OCI artifacts; push, pull, inspect, copy, tags, login, logout."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from meshfilter.cli._common import check_output, parse_kv, write_output
from meshfilter.errors import UsageError
from meshfilter.oras.auth import erase_login, normalize_host, registry_key, store_login
from meshfilter.oras.client import PushStats, RegistryClient
from meshfilter.oras.copy import CopyStats, copy_artifact
from meshfilter.oras.formats import FORMATS, Artifact, build_artifact, check_module
from meshfilter.oras.layout import LayoutStore, read_layout, write_layout
from meshfilter.oras.progress import tty_progress
from meshfilter.oras.reference import Reference, is_registry_host, parse_reference
from meshfilter.oras.runtime_config import DEFAULT_ABI_VERSIONS, build_runtime_config, parse_runtime_config
from meshfilter.util.digest import read_with_digest

FIELD_FLAGS = {"password": "--password-stdin"}
_LAYOUT_REF = re.compile(r"^(?P<dir>.+?)(?:@(?P<digest>sha256:[a-f0-9]{64})|:(?P<tag>[\w][\w.-]{0,127}))?$")


def note(text: str) -> None:
    print(f"meshfilter: note: {text}", file=sys.stderr)


def _registry_flags(p: argparse.ArgumentParser, *, credentials: bool = True) -> None:
    g = p.add_argument_group("registry connection")
    g.add_argument("--plain-http", action="store_true", help="talk HTTP, not HTTPS (only for local registries)")
    g.add_argument("--insecure", action="store_true", help="do not verify the registry's TLS certificate")
    g.add_argument("--ca-file", metavar="PEM", help="trust this CA bundle for the registry's certificate")
    if credentials:
        g.add_argument("--username", "-u", metavar="U", help="registry user (password from --password-stdin)")
        g.add_argument("--password-stdin", action="store_true", help="read the registry password from stdin")
    g.add_argument("--docker-config", metavar="FILE",
                   help="docker config holding logins (default: $DOCKER_CONFIG/config.json or ~/.docker/config.json)")
    p.set_defaults(field_flags=FIELD_FLAGS)


def _read_password(args: argparse.Namespace) -> str | None:
    if not getattr(args, "password_stdin", False):
        return None
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("--password-stdin needs the password piped on stdin", where="--password-stdin",
                         hint="e.g. printf %s \"$PASS\" | meshfilter oras push --username U --password-stdin ...")
    raw = sys.stdin.read()
    return raw[:-2] if raw.endswith("\r\n") else raw[:-1] if raw.endswith("\n") else raw


def _connection(args: argparse.Namespace) -> dict[str, Any]:
    if args.ca_file and not Path(args.ca_file).is_file():
        raise UsageError("CA file not found", where=f"--ca-file {args.ca_file}", hint="give a PEM file path")
    if args.plain_http and (args.ca_file or args.insecure):
        raise UsageError("--plain-http cannot be combined with --ca-file or --insecure", where="--plain-http",
                         hint="choose HTTP (--plain-http) or HTTPS options")
    return {"plain_http": args.plain_http, "insecure": args.insecure, "ca_file": args.ca_file,
            "docker_config": args.docker_config}


def _client(args: argparse.Namespace, ref: str | Reference, *, progress: bool = False) -> RegistryClient:
    conn = _connection(args)
    password = _read_password(args)
    if getattr(args, "password_stdin", False) and not args.username:
        raise UsageError("--password-stdin needs --username", where="--password-stdin", hint="add --username U")
    reference = parse_reference(ref, where="REF") if isinstance(ref, str) else ref
    return RegistryClient(reference, username=getattr(args, "username", None), password=password,
                          progress=tty_progress() if progress else None, **conn)


@contextmanager
def _reading(path: str, flag: str) -> Iterator[None]:
    """One line for a file that cannot be read (named by its flag)."""
    try:
        yield
    except OSError as exc:
        raise UsageError(f"cannot read file ({exc.strerror})", where=f"{flag} {path}",
                         hint="check the path") from None


def _read_file(path: str, flag: str) -> bytes:
    with _reading(path, flag):
        return Path(path).read_bytes()


def _runtime_config(args: argparse.Namespace) -> bytes | None:
    if args.runtime_config:
        if args.root_id or args.abi_version:
            raise UsageError("--runtime-config cannot be combined with --root-id/--abi-version",
                             where="--runtime-config", hint="put the root ids in the file, or drop the file")
        data = _read_file(args.runtime_config, "--runtime-config")
        parse_runtime_config(data, where=args.runtime_config)
        return data
    if args.root_id:
        return build_runtime_config(args.root_id, args.abi_version).to_bytes()
    if args.abi_version:
        raise UsageError("--abi-version needs --root-id", where="--abi-version", hint="add --root-id ID")
    return None


def _say_implicit_tag(ref: Reference, text: str) -> None:
    if ref.implicit_tag:
        note(f"{text} has no tag: using :latest")


def cmd_push(args: argparse.Namespace) -> int:
    ref = parse_reference(args.ref, where="REF")
    if args.from_oci_layout:
        if args.module:
            raise UsageError("give either MODULE.wasm or --from-oci-layout, not both", where="MODULE")
        if args.oci_layout:
            raise UsageError("--from-oci-layout pushes to a registry; drop --oci-layout", where="--oci-layout")
        artifact: Artifact = read_layout(args.from_oci_layout, args.layout_tag or
                                         (ref.tag if ref.tag and not ref.implicit_tag else None))
    else:
        if not args.module:
            raise UsageError("MODULE.wasm is missing", where="push",
                             hint="meshfilter oras push REF MODULE.wasm (or --from-oci-layout DIR)")
        with _reading(args.module, "MODULE"):
            module, module_digest = read_with_digest(args.module)  # one pass: read and hash
        check_module(module, where=args.module)
        artifact = build_artifact(args.format, module, runtime_config=_runtime_config(args),
                                  title=Path(args.module).name, module_digest=module_digest,
                                  annotations=parse_kv(args.annotation, flag="--annotation"))
    _say_implicit_tag(ref, args.ref)
    if args.oci_layout:
        digest = write_layout(args.oci_layout, artifact, ref.tag or "latest")
        print(f"{args.ref}@{digest}")
        return 0
    stats = PushStats()
    digest = _client(args, ref, progress=True).push(artifact, stats=stats)
    print(f"{args.ref}@{digest}")
    extra = "".join(f", {n} {what}" for n, what in ((stats.resumed, "upload(s) resumed"),
                                                      (stats.restarted, "upload(s) restarted")) if n)
    print(f"pushed {artifact.format}: {stats.uploaded} blob(s) uploaded ({stats.bytes_uploaded} bytes), "
          f"{stats.skipped} already present{extra}", file=sys.stderr)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    check_output(args.output)  # before the download
    client = _client(args, args.ref, progress=True)
    if args.output == "-":
        pulled = client.pull(runtime_config=False)  # only the module is written
        notes, digest, fmt, size = pulled.notes, pulled.manifest.digest, pulled.detected.format, len(pulled.module)
        write_output(pulled.module, args.output)
    else:  # streamed into the file, atomically; one line when it cannot be written
        got = client.pull_to(Path(args.output), parents=False, field="output")
        notes, digest, fmt, size = got.notes, got.manifest.digest, got.detected.format, got.size
    for text in notes:
        note(text)
    print(f"{args.ref}@{digest} ({fmt}, {size} bytes) -> {args.output}", file=sys.stderr)
    return 0


def render_inspect(doc: dict[str, Any]) -> str:
    lines = [f"Reference:    {doc['reference']}", f"Digest:       {doc['digest']}",
             f"Media type:   {doc['mediaType']} ({doc['size']} bytes)", f"Format:       {doc['format']}",
             f"Type:         {doc['type'] or '-'}",
             f"Root ids:     {', '.join(doc['rootIds']) or '-'}",
             f"ABI versions: {', '.join(doc['abiVersions']) or '-'}"]
    idx = doc.get("index")
    if idx:
        how = "linux/amd64" if idx["choice"] == "linux/amd64" else "its only manifest"
        lines.insert(2, f"Index:        {idx['digest']} ({idx['manifests']} manifest(s); took {how}, "
                        f"platform {idx['platform'] or '-'})")
    for k, v in doc["annotations"].items():
        lines.append(f"Annotation:   {k}={v}")
    c = doc["config"]
    lines.append(f"Config:       {c['mediaType']}  {c['size']} bytes  {c['digest']}")
    for i, layer in enumerate(doc["layers"]):
        mark = " (wasm)" if layer["digest"] == doc["wasmLayer"] else ""
        lines.append(f"Layer {i}:      {layer['mediaType']}  {layer['size']} bytes  {layer['digest']}{mark}")
        for k, v in (layer.get("annotations") or {}).items():
            lines.append(f"              {k}={v}")
    for text in doc.get("notes") or []:
        lines.append(f"Note:         {text}")
    return "\n".join(lines) + "\n"


def cmd_inspect(args: argparse.Namespace) -> int:
    doc = _client(args, args.ref).inspect()
    if args.output == "json":
        print(json.dumps(doc, indent=2))
    else:
        sys.stdout.write(render_inspect(doc))
    return 0


def cmd_runtime_config(args: argparse.Namespace) -> int:
    write_output(build_runtime_config(args.root_id, args.abi_version).to_bytes(), args.output)
    return 0


# -- copy, tags ----------------------------------------------------------------------------------------

def _layout_ref(text: str, flag: str) -> tuple[LayoutStore, str | None]:
    m = _LAYOUT_REF.match(text)
    if not m:
        raise UsageError(f"{text!r} is not DIR[:TAG] or DIR@sha256:DIGEST", where=flag)
    return LayoutStore(m.group("dir")), m.group("digest") or m.group("tag")


def cmd_copy(args: argparse.Namespace) -> int:
    conn = _connection(args)
    src: Any
    dst: Any
    if args.from_oci_layout:
        src, src_reference = _layout_ref(args.src, "SRC")
        src.require()
    else:
        src_ref = parse_reference(args.src, where="SRC")
        src = RegistryClient(src_ref, **{**conn, "plain_http": args.plain_http or args.from_plain_http},
                             progress=tty_progress())
        src_reference = src_ref.reference
    if args.to_oci_layout:
        dst, dst_reference = _layout_ref(args.dst, "DST")
    else:
        dst_ref = parse_reference(args.dst, where="DST")
        dst = RegistryClient(dst_ref, **{**conn, "plain_http": args.plain_http or args.to_plain_http},
                             progress=tty_progress())
        dst_reference = None if dst_ref.implicit_tag else dst_ref.reference
    if dst_reference is None:  # no tag on DST: the source's tag (or digest), as oras copy does
        dst_reference = src_reference or "latest"
        if dst_reference == "latest":
            note(f"{args.dst} has no tag: using :latest")
    stats = CopyStats()
    digest = copy_artifact(src, src_reference, dst, dst_reference, stats=stats, where=args.src)
    if args.to_oci_layout:
        target = f"{dst}:{dst_reference}" if not dst_reference.startswith("sha256:") else str(dst)
    else:
        target = str(dst.ref.with_tag(None if dst_reference.startswith("sha256:") else dst_reference))
    print(f"{target}@{digest}")
    print(f"copied {args.src} -> {args.dst}: {stats.manifests} manifest(s), {stats.uploaded} blob(s) "
          f"({stats.bytes_copied} bytes) copied, {stats.skipped} already present, every digest checked",
          file=sys.stderr)
    return 0


def cmd_tags(args: argparse.Namespace) -> int:
    if args.oci_layout:
        store = LayoutStore(args.repo)
        store.require()
        tags = [t for t in store.tags() if t]
    else:
        ref = parse_reference(args.repo, where="REPO")
        if not ref.implicit_tag:
            raise UsageError(f"{args.repo} names a tag or digest; give the repository only", where="REPO",
                             hint=f"meshfilter oras tags {ref.repo}")
        tags = _client(args, ref).tags()
    for t in tags:
        print(t)
    return 0


# -- login, logout ---------------------------------------------------------------------------------------

def _registry_host(text: str) -> str:
    host = normalize_host(text)
    if not host or not is_registry_host(host) or "/" in text.split("://", 1)[-1].rstrip("/"):
        raise UsageError(f"{text!r} is not a registry host[:port]", where="REGISTRY",
                         hint="e.g. meshfilter oras login localhost:5000 --username U --password-stdin")
    return host


def cmd_login(args: argparse.Namespace) -> int:
    host = _registry_host(args.registry)
    if not args.username or not args.password_stdin:
        raise UsageError("login needs --username U and --password-stdin", where="--username",
                         hint=f"printf %s \"$PASS\" | meshfilter oras login {host} --username U --password-stdin")
    client = _client(args, Reference(host, "meshfilter/login-check"))
    client.ping()  # the credentials must work before they are written anywhere
    assert client.credentials is not None
    path = store_login(host, client.credentials.username, client.credentials.password,
                       docker_config=args.docker_config)
    print(f"Login Succeeded ({registry_key(host)} in {path})")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    host = _registry_host(args.registry)
    if erase_login(host, docker_config=args.docker_config):
        print(f"Removing login credentials for {registry_key(host)}")
    else:
        print(f"Not logged in to {registry_key(host)}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("oras", help="package Wasm filters as OCI artifacts; push, pull, inspect, copy, tags, login")
    s = p.add_subparsers(dest="oras_cmd", metavar="SUBCOMMAND", parser_class=type(p))
    s.required = True

    push = s.add_parser("push", help="push MODULE.wasm as an OCI artifact; prints REF@sha256:<digest>")
    push.add_argument("ref", metavar="REF", help="registry/repository:tag (no tag: latest, and a note says so)")
    push.add_argument("module", metavar="MODULE.wasm", nargs="?", help="the Wasm module")
    push.add_argument("--format", choices=FORMATS, default="asm",
                      help="asm (seed, ASM node cache; default), wasme (Istio/wasme two-layer), "
                           "compat (OCI tar+gzip plugin.wasm), docker (schema 2), cncf (CNCF Wasm artifact layout)")
    push.add_argument("--root-id", action="append", metavar="ID", help="root id (repeatable)")
    push.add_argument("--abi-version", action="append", metavar="V",
                      help="ABI version (repeatable; default: the four from the seed)")
    push.add_argument("--runtime-config", metavar="FILE", help="use this runtime-config.json as is")
    push.add_argument("--annotation", action="append", metavar="K=V", help="manifest annotation (repeatable)")
    push.add_argument("--oci-layout", metavar="DIR", help="write to an OCI image layout on disk, not a registry")
    push.add_argument("--from-oci-layout", metavar="DIR", help="push the artifact stored in this OCI layout")
    push.add_argument("--layout-tag", metavar="TAG", help="which tag of --from-oci-layout (default: REF's tag)")
    _registry_flags(push)
    push.set_defaults(handler=cmd_push)

    pull = s.add_parser("pull", help="pull a Wasm artifact (any format, through an image index) and write the module")
    pull.add_argument("ref", metavar="REF")
    pull.add_argument("-o", "--output", required=True, metavar="FILE.wasm", help="where to write the module")
    _registry_flags(pull)
    pull.set_defaults(handler=cmd_pull)

    insp = s.add_parser("inspect", help="show format, root ids, ABI versions, media types, sizes, digests")
    insp.add_argument("ref", metavar="REF")
    insp.add_argument("-o", "--output", choices=("text", "json"), default="text")
    _registry_flags(insp)
    insp.set_defaults(handler=cmd_inspect)

    cp = s.add_parser("copy", help="copy an artifact (or image index) between registries and OCI layouts, "
                                   "every blob digest-checked")
    cp.add_argument("src", metavar="SRC", help="registry/repository[:tag|@digest], or DIR[:TAG] with --from-oci-layout")
    cp.add_argument("dst", metavar="DST", help="registry/repository[:tag], or DIR[:TAG] with --to-oci-layout "
                                               "(no tag: SRC's)")
    cp.add_argument("--from-oci-layout", action="store_true", help="SRC is an OCI image layout directory")
    cp.add_argument("--to-oci-layout", action="store_true", help="DST is an OCI image layout directory")
    cp.add_argument("--from-plain-http", action="store_true", help="talk HTTP to SRC's registry only")
    cp.add_argument("--to-plain-http", action="store_true", help="talk HTTP to DST's registry only")
    _registry_flags(cp, credentials=False)
    cp.set_defaults(handler=cmd_copy, field_flags={**FIELD_FLAGS, "layout_tag": "SRC:TAG"})

    tags = s.add_parser("tags", help="list a repository's tags, one per line (like oras repo tags)")
    tags.add_argument("repo", metavar="REPO", help="registry/repository (or an OCI layout DIR with --oci-layout)")
    tags.add_argument("--oci-layout", action="store_true", help="REPO is an OCI image layout directory")
    _registry_flags(tags)
    tags.set_defaults(handler=cmd_tags)

    login = s.add_parser("login", help="check credentials and store them in the docker config (mode 0600)")
    login.add_argument("registry", metavar="REGISTRY", help="host[:port]")
    _registry_flags(login)
    login.set_defaults(handler=cmd_login)

    logout = s.add_parser("logout", help="remove a registry's credentials from the docker config")
    logout.add_argument("registry", metavar="REGISTRY", help="host[:port]")
    logout.add_argument("--docker-config", metavar="FILE", help="docker config (default: as for login)")
    logout.set_defaults(handler=cmd_logout)

    rc = s.add_parser("runtime-config", help="write runtime-config.json")
    rc.add_argument("--root-id", action="append", required=True, metavar="ID", help="root id (repeatable)")
    rc.add_argument("--abi-version", action="append", metavar="V",
                    help="ABI version (repeatable); default: " + ", ".join(DEFAULT_ABI_VERSIONS))
    rc.add_argument("-o", "--output", metavar="FILE", help="output file (default stdout)")
    rc.set_defaults(handler=cmd_runtime_config)
