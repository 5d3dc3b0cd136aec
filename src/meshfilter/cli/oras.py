"""``meshfilter oras``: package Wasm filters as OCI artifacts; push, pull, inspect; runtime-config.json."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from meshfilter.cli._common import check_output, parse_kv, write_output
from meshfilter.errors import UsageError
from meshfilter.oras.client import PushStats, RegistryClient
from meshfilter.oras.formats import FORMATS, Artifact, build_artifact
from meshfilter.oras.layout import read_layout, write_layout
from meshfilter.oras.progress import tty_progress
from meshfilter.oras.reference import parse_reference
from meshfilter.oras.runtime_config import DEFAULT_ABI_VERSIONS, build_runtime_config, parse_runtime_config


def _registry_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("registry connection")
    g.add_argument("--plain-http", action="store_true", help="talk HTTP, not HTTPS (only for local registries)")
    g.add_argument("--insecure", action="store_true", help="do not verify the registry's TLS certificate")
    g.add_argument("--ca-file", metavar="PEM", help="trust this CA bundle for the registry's certificate")
    g.add_argument("--username", "-u", metavar="U", help="registry user (password from --password-stdin)")
    g.add_argument("--password-stdin", action="store_true", help="read the registry password from stdin")


def _read_password(args: argparse.Namespace) -> str | None:
    if not args.password_stdin:
        return None
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("--password-stdin needs the password piped on stdin", where="--password-stdin",
                         hint="e.g. printf %s \"$PASS\" | meshfilter oras push --username U --password-stdin ...")
    raw = sys.stdin.read()
    return raw[:-2] if raw.endswith("\r\n") else raw[:-1] if raw.endswith("\n") else raw


def _client(args: argparse.Namespace, ref: str, *, progress: bool = False) -> RegistryClient:
    if args.ca_file and not Path(args.ca_file).is_file():
        raise UsageError("CA file not found", where=f"--ca-file {args.ca_file}", hint="give a PEM file path")
    if args.plain_http and (args.ca_file or args.insecure):
        raise UsageError("--plain-http cannot be combined with --ca-file or --insecure", where="--plain-http",
                         hint="choose HTTP (--plain-http) or HTTPS options")
    password = _read_password(args)
    if args.password_stdin and not args.username:
        raise UsageError("--password-stdin needs --username", where="--password-stdin", hint="add --username U")
    return RegistryClient(parse_reference(ref, where="REF"), plain_http=args.plain_http, insecure=args.insecure,
                          ca_file=args.ca_file, username=args.username, password=password,
                          progress=tty_progress() if progress else None)


def _read_file(path: str, flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read file ({exc.strerror})", where=f"{flag} {path}",
                         hint="check the path") from None


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


def cmd_push(args: argparse.Namespace) -> int:
    ref = parse_reference(args.ref, where="REF")
    if args.from_oci_layout:
        if args.module:
            raise UsageError("give either MODULE.wasm or --from-oci-layout, not both", where="MODULE")
        if args.oci_layout:
            raise UsageError("--from-oci-layout pushes to a registry; drop --oci-layout", where="--oci-layout")
        artifact: Artifact = read_layout(args.from_oci_layout, args.layout_tag or
                                         (ref.tag if ref.tag and ref.tag != "latest" else None))
    else:
        if not args.module:
            raise UsageError("MODULE.wasm is missing", where="push",
                             hint="meshfilter oras push REF MODULE.wasm (or --from-oci-layout DIR)")
        module = _read_file(args.module, "MODULE")
        from meshfilter.oras.formats import check_module

        check_module(module, where=args.module)
        artifact = build_artifact(args.format, module, runtime_config=_runtime_config(args),
                                  title=Path(args.module).name,
                                  annotations=parse_kv(args.annotation, flag="--annotation"))
    if args.oci_layout:
        digest = write_layout(args.oci_layout, artifact, ref.tag or "latest")
        print(f"{args.ref}@{digest}")
        return 0
    stats = PushStats()
    digest = _client(args, args.ref, progress=True).push(artifact, stats=stats)
    print(f"{args.ref}@{digest}")
    print(f"pushed {artifact.format}: {stats.uploaded} blob(s) uploaded ({stats.bytes_uploaded} bytes), "
          f"{stats.skipped} already present", file=sys.stderr)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    check_output(args.output)  # before the download
    pulled = _client(args, args.ref).pull()
    write_output(pulled.module, args.output)
    print(f"{args.ref}@{pulled.manifest.digest} ({pulled.detected.format}, {len(pulled.module)} bytes) "
          f"-> {args.output}", file=sys.stderr)
    return 0


def render_inspect(doc: dict[str, Any]) -> str:
    lines = [f"Reference:    {doc['reference']}", f"Digest:       {doc['digest']}",
             f"Media type:   {doc['mediaType']} ({doc['size']} bytes)", f"Format:       {doc['format']}",
             f"Type:         {doc['type'] or '-'}",
             f"Root ids:     {', '.join(doc['rootIds']) or '-'}",
             f"ABI versions: {', '.join(doc['abiVersions']) or '-'}"]
    for k, v in doc["annotations"].items():
        lines.append(f"Annotation:   {k}={v}")
    c = doc["config"]
    lines.append(f"Config:       {c['mediaType']}  {c['size']} bytes  {c['digest']}")
    for i, layer in enumerate(doc["layers"]):
        mark = " (wasm)" if layer["digest"] == doc["wasmLayer"] else ""
        lines.append(f"Layer {i}:      {layer['mediaType']}  {layer['size']} bytes  {layer['digest']}{mark}")
        for k, v in (layer.get("annotations") or {}).items():
            lines.append(f"              {k}={v}")
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


def register(sub: Any) -> None:
    p = sub.add_parser("oras", help="package Wasm filters as OCI artifacts; push, pull, inspect")
    s = p.add_subparsers(dest="oras_cmd", metavar="SUBCOMMAND", parser_class=type(p))
    s.required = True

    push = s.add_parser("push", help="push MODULE.wasm as an OCI artifact; prints REF@sha256:<digest>")
    push.add_argument("ref", metavar="REF", help="registry/repository:tag")
    push.add_argument("module", metavar="MODULE.wasm", nargs="?", help="the Wasm module")
    push.add_argument("--format", choices=FORMATS, default="asm",
                      help="asm (seed, ASM node cache; default), wasme (Istio/wasme two-layer), "
                           "compat (OCI tar+gzip plugin.wasm), docker (schema 2)")
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

    pull = s.add_parser("pull", help="pull a Wasm artifact (any format) and write the module")
    pull.add_argument("ref", metavar="REF")
    pull.add_argument("-o", "--output", required=True, metavar="FILE.wasm", help="where to write the module")
    _registry_flags(pull)
    pull.set_defaults(handler=cmd_pull)

    insp = s.add_parser("inspect", help="show format, root ids, ABI versions, media types, sizes, digests")
    insp.add_argument("ref", metavar="REF")
    insp.add_argument("-o", "--output", choices=("text", "json"), default="text")
    _registry_flags(insp)
    insp.set_defaults(handler=cmd_inspect)

    rc = s.add_parser("runtime-config", help="write runtime-config.json")
    rc.add_argument("--root-id", action="append", required=True, metavar="ID", help="root id (repeatable)")
    rc.add_argument("--abi-version", action="append", metavar="V",
                    help="ABI version (repeatable); default: " + ", ".join(DEFAULT_ABI_VERSIONS))
    rc.add_argument("-o", "--output", metavar="FILE", help="output file (default stdout)")
    rc.set_defaults(handler=cmd_runtime_config)
