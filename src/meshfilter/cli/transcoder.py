"""``meshfilter transcoder``: gRPC-JSON transcoder EnvoyFilter (or standalone Envoy bootstrap).

Accepts grpc-transcoder's flags verbatim (``--version --service_port --service_name --proto_pkg
--proto_svc --descriptor --header``, and its short forms ``-v -p -s -d``) and their hyphenated
spellings, plus ``--proto FILE.proto [-I DIR ...]`` to compile in-process. Every option of Envoy's
GrpcJsonTranscoder is a flag named after its field, in both spellings.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from meshfilter.cli._common import add_output_flag, parse_kv, write_output
from meshfilter.cli._fields import flags_of
from meshfilter.errors import UsageError
from meshfilter.transcoder import config as cfg

GRPC_TRANSCODER_FLAGS = ("descriptor", "proto_pkg", "proto_svc", "service_port", "service_name")


def _both(name: str) -> list[str]:
    """Both spellings, ``--proto_pkg``/``--proto-pkg``; grpc-transcoder's spelling first for its own
    flags, the hyphenated one first for meshfilter's."""
    under, hyphen = "--" + name.replace("-", "_"), "--" + name.replace("_", "-")
    if under == hyphen:
        return [under]
    return [under, hyphen] if name in GRPC_TRANSCODER_FLAGS else [hyphen, under]


def _bool(g: argparse._ArgumentGroup, name: str, help: str, default: bool | None = None) -> None:
    dest = name.replace("-", "_")
    g.add_argument(*_both(name), dest=dest, action=argparse.BooleanOptionalAction, default=default, help=help)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "transcoder", help="gRPC-JSON transcoder EnvoyFilter from a .proto or descriptor set",
        description="Emit the Istio EnvoyFilter (grpc-transcoder's shape) that installs Envoy's gRPC-JSON "
                    "transcoder, or with --envoy-config a standalone Envoy bootstrap. Flags accept "
                    "grpc-transcoder's spellings (--service_port) and hyphenated ones (--service-port).")
    src = p.add_argument_group("input (one of)")
    src.add_argument("-d", *_both("descriptor"), dest="descriptor", metavar="FILE",
                     help="FileDescriptorSet from protoc --include_imports --descriptor_set_out")
    src.add_argument("--proto", action="append", metavar="FILE.proto",
                     help="compile this .proto in-process (repeatable); imports and source info included")
    src.add_argument("-I", *_both("proto_path"), dest="include", action="append", default=[], metavar="DIR",
                     help="import search directory for --proto (repeatable)")
    sel = p.add_argument_group("services (grpc-transcoder)")
    sel.add_argument(*_both("proto_pkg"), dest="proto_pkg", action="append", metavar="PKG",
                     help="package prefix (repeatable, comma-separated values allowed)")
    sel.add_argument(*_both("proto_svc"), dest="proto_svc", action="append", metavar="REGEX",
                     help="regex on the short service name, unanchored (repeatable, comma-separated)")
    ef = p.add_argument_group("EnvoyFilter (grpc-transcoder)")
    ef.add_argument("-v", "--version", dest="version", default="1.8",
                    help="Istio version of the proxies; proxyVersion regex derived from it (default 1.8)")
    ef.add_argument("-p", *_both("service_port"), dest="service_port", type=int, default=80,
                    help="listener port: the Gateway server port (GATEWAY) or the workload's container "
                         "port (SIDECAR_INBOUND) (default 80)")
    ef.add_argument("-s", *_both("service_name"), dest="service_name", default="grpc-transcoder",
                    help="names the EnvoyFilter grpc-transcoder-NAME; SIDECAR_INBOUND selects app=NAME")
    ef.add_argument("--header", action="append", metavar="X=A",
                    help="also emit a header-to-metadata EnvoyFilter: header X -> envoy.lb metadata key A "
                         "(repeatable, comma-separated)")
    ef.add_argument(*_both("filter_name"), dest="filter_name", default="legacy",
                    help="legacy (envoy.grpc_json_transcoder, default), modern "
                         "(envoy.filters.http.grpc_json_transcoder) or a literal name")
    ef.add_argument("--context", default="GATEWAY", help="GATEWAY (default) or SIDECAR_INBOUND")
    ef.add_argument("--selector", action="append", metavar="K=V",
                    help="workloadSelector labels (default app=istio-ingressgateway, or app=NAME for sidecars)")
    ef.add_argument("-n", "--namespace", default=None, help="metadata.namespace (default: none, like grpc-transcoder)")
    opt = p.add_argument_group("transcoder options")
    _bool(opt, "add_whitespace", "print_options.add_whitespace (default on)", True)
    _bool(opt, "always_print_primitive_fields", "print_options.always_print_primitive_fields (default on)", True)
    _bool(opt, "always_print_enums_as_ints", "print_options.always_print_enums_as_ints (default off)", False)
    _bool(opt, "preserve_proto_field_names", "print_options.preserve_proto_field_names (default off)", False)
    _bool(opt, "stream_newline_delimited", "print_options.stream_newline_delimited (default off)", False)
    _bool(opt, "convert_grpc_status", "convert gRPC errors to HTTP status + JSON google.rpc.Status", False)
    _bool(opt, "auto_mapping", "map unannotated methods to POST /pkg.Service/Method", False)
    _bool(opt, "reject_unknown_method", "request_validation_options: 404 for paths mapping to no method", False)
    _bool(opt, "reject_unknown_query_parameters", "request_validation_options: 400 for unknown query "
                                                  "parameters", False)
    _bool(opt, "reject_binding_body_field_collisions", "request_validation_options: 400 when a binding "
                                                       "and the body set the same field", False)
    _bool(opt, "ignore_unknown_query_parameters", "ignore query parameters that map to no field", False)
    opt.add_argument(*_both("ignored_query_parameters"), dest="ignored_query_parameters", action="append",
                     metavar="NAMES", help="query parameters to ignore (repeatable, comma-separated)")
    opt.add_argument(*_both("max_request_body_size"), dest="max_request_body_size", type=int, metavar="BYTES")
    opt.add_argument(*_both("max_response_body_size"), dest="max_response_body_size", type=int, metavar="BYTES")
    _bool(opt, "stream_sse_style_delimited", "print_options.stream_sse_style_delimited: server streams as "
                                             "Server-Sent Events (default off)", False)
    _bool(opt, "match_incoming_request_route", "keep the incoming request's route after transcoding "
                                               "(route on the HTTP/JSON path, not the gRPC one)", False)
    _bool(opt, "query_param_unescape_plus", "turn '+' in query parameters into a space (HTML forms)", False)
    _bool(opt, "match_unregistered_custom_verb", "treat ':verb' at the end of a path as a custom verb even when "
                                                 "no template registers it", False)
    _bool(opt, "case_insensitive_enum_parsing", "accept enum values in any case in JSON requests ('talk' for "
                                                "TALK)", False)
    _bool(opt, "capture_unknown_query_parameters", "put unknown query parameters into an HttpBody request's "
                                                   "extensions (UnknownQueryParams)", False)
    opt.add_argument(*_both("url_unescape_spec"), dest="url_unescape_spec", choices=cfg.URL_UNESCAPE_SPECS,
                     help="how multi-segment path variables are unescaped (Envoy's default "
                          "ALL_CHARACTERS_EXCEPT_RESERVED)")
    big = p.add_argument_group("descriptor as a file on the proxy (past the 1.5 MiB object limit)")
    big.add_argument(*_both("descriptor_path"), dest="descriptor_path", metavar="PATH",
                     help="emit proto_descriptor: PATH instead of inlining the descriptor, plus a ConfigMap "
                          "holding it and the gateway annotations that mount it there")
    big.add_argument(*_both("descriptor_configmap"), dest="descriptor_configmap", metavar="NAME",
                     help="name of that ConfigMap (default grpc-transcoder-SERVICE_NAME-descriptor)")
    big.add_argument(*_both("no_descriptor_configmap"), dest="no_descriptor_configmap", action="store_true",
                     help="emit no ConfigMap: the file reaches the proxy another way")
    big.add_argument(*_both("gateway_deployment"), dest="gateway_deployment", default="istio-ingressgateway",
                     metavar="NAME", help="the Deployment the annotations go on (default istio-ingressgateway)")
    out = p.add_argument_group("output")
    out.add_argument(*_both("envoy_config"), dest="envoy_config", action="store_true",
                     help="emit a standalone Envoy bootstrap instead: listener with the transcoder + HTTP/2 "
                          "cluster to the gRPC server")
    out.add_argument(*_both("grpc_server"), dest="grpc_server", default=None, metavar="HOST:PORT",
                     help="--envoy-config upstream (default SERVICE_NAME:SERVICE_PORT)")
    out.add_argument(*_both("listen"), dest="listen", default="0.0.0.0:8080", metavar="HOST:PORT",
                     help="--envoy-config listener address (default 0.0.0.0:8080)")
    out.add_argument(*_both("admin_port"), dest="admin_port", type=int, default=9901,
                     help="--envoy-config admin port on 127.0.0.1 (default 9901)")
    out.add_argument("--format", choices=("yaml", "json"), default="yaml")
    add_output_flag(out)
    p.set_defaults(handler=run)
    p.set_defaults(field_flags={"include": "-I"}, flag_table=flags_of(p))


def _host_port(value: str, flag: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"{value!r} is not HOST:PORT", where=flag, hint=f"write {flag} 127.0.0.1:9996")
    return host.strip("[]"), int(port)


def _headers(values: list[str] | None) -> dict[str, str]:
    from meshfilter.k8s.checks import check_header_name
    from meshfilter.transcoder.descriptor import split_values

    items = split_values(values)
    for raw in items:
        if "=" not in raw:
            raise UsageError(f"{raw!r} has no '='", where="--header",
                             hint="write --header HEADER=METADATA_KEY, e.g. --header x-user=user")
    headers = parse_kv(items, flag="--header")
    for name, key in headers.items():
        check_header_name(name, field="header")
        if not key.strip() or any(c in key for c in "\r\n\0"):
            raise UsageError(f"the metadata key of {name!r} is {key!r}", where="--header",
                             hint="write --header HEADER=METADATA_KEY with a non-empty key, e.g. --header x-user=user")
    return headers


def _warn(lines: list[str], args: argparse.Namespace | None = None) -> None:
    table = getattr(args, "flag_table", None) or {}
    for line in lines:
        text = UsageError(line).line(table.get) if table else line  # fields in backticks -> this command's flags
        print(f"meshfilter: warning: {text}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from meshfilter.transcoder import descriptor as desc
    from meshfilter.transcoder import envoyfilter as efm
    from meshfilter.transcoder.compile import compile_protos

    # Validate cheap flags before compiling.
    headers = _headers(args.header)
    efm.check_context(args.context)
    efm.check_port(args.service_port)
    regex = efm.proxy_version_regex(args.version)
    del regex
    from meshfilter.cli.deploy_checks import check_dns1123_label, check_dns1123_subdomain

    check_dns1123_subdomain(args.service_name, field="service_name", example="grpc-server-svc")
    check_dns1123_subdomain(f"grpc-transcoder-{args.service_name}", field="service_name", example="grpc-server-svc")
    if args.namespace is not None:
        check_dns1123_label(args.namespace, field="namespace")
    selector = None
    if args.selector:
        from meshfilter.cli.deploy_checks import check_labels

        selector = check_labels(args.selector, field="selector")
    if args.descriptor_path:
        efm.check_descriptor_path(args.descriptor_path)
        if args.envoy_config:
            raise UsageError("`descriptor_path` is for the EnvoyFilter; the bootstrap inlines the descriptor",
                             where="descriptor_path", hint="drop `envoy_config` or `descriptor_path`")
    elif args.descriptor_configmap or args.no_descriptor_configmap:
        raise UsageError("the descriptor ConfigMap goes with `descriptor_path`", where="descriptor_configmap"
                         if args.descriptor_configmap else "no_descriptor_configmap", hint="add `descriptor_path` PATH")
    options = cfg.TranscoderOptions(
        print_options=cfg.PrintOptions(
            add_whitespace=args.add_whitespace,
            always_print_primitive_fields=args.always_print_primitive_fields,
            always_print_enums_as_ints=args.always_print_enums_as_ints,
            preserve_proto_field_names=args.preserve_proto_field_names,
            stream_newline_delimited=args.stream_newline_delimited,
            stream_sse_style_delimited=args.stream_sse_style_delimited),
        request_validation=cfg.RequestValidationOptions(
            reject_unknown_method=args.reject_unknown_method,
            reject_unknown_query_parameters=args.reject_unknown_query_parameters,
            reject_binding_body_field_collisions=args.reject_binding_body_field_collisions),
        convert_grpc_status=args.convert_grpc_status,
        auto_mapping=args.auto_mapping,
        ignored_query_parameters=tuple(desc.split_values(args.ignored_query_parameters)),
        ignore_unknown_query_parameters=args.ignore_unknown_query_parameters,
        max_request_body_size=args.max_request_body_size,
        max_response_body_size=args.max_response_body_size,
        match_incoming_request_route=args.match_incoming_request_route,
        url_unescape_spec=args.url_unescape_spec,
        query_param_unescape_plus=args.query_param_unescape_plus,
        match_unregistered_custom_verb=args.match_unregistered_custom_verb,
        case_insensitive_enum_parsing=args.case_insensitive_enum_parsing,
        capture_unknown_query_parameters=args.capture_unknown_query_parameters)

    if bool(args.descriptor) == bool(args.proto):
        raise UsageError("give exactly one of --descriptor FILE or --proto FILE.proto", where="meshfilter transcoder",
                         hint="--descriptor landing.proto-descriptor, or --proto landing.proto -I DIR")
    if args.descriptor:
        data = desc.read_descriptor_file(args.descriptor)
        where = args.descriptor
    else:
        data = compile_protos(args.proto, args.include)
        where = ", ".join(args.proto)
    fds = desc.load_descriptor_set(data, where=where)
    services = desc.select_services(fds, desc.split_values(args.proto_pkg), desc.split_values(args.proto_svc),
                                    where=where)
    if not options.auto_mapping:
        _warn(desc.unannotated_warnings(services), args)
    names = [s.full_name for s in services]

    if args.envoy_config:
        from meshfilter.transcoder.bootstrap import transcoder_bootstrap

        grpc_host, grpc_port = _host_port(args.grpc_server or f"{args.service_name}:{args.service_port}",
                                          "--grpc-server")
        listen_host, listen_port = _host_port(args.listen, "--listen")
        doc = transcoder_bootstrap(descriptor=data, services=names, grpc_host=grpc_host, grpc_port=grpc_port,
                                   options=options, filter_name=("modern" if args.filter_name == "legacy"
                                                                 else args.filter_name),
                                   listener_port=listen_port, listen_host=listen_host,
                                   admin_port=args.admin_port)
        write_output(_dump([doc], args.format, header=None), args.output)
        return 0

    common: dict[str, Any] = dict(version=args.version, service_name=args.service_name,
                                  service_port=args.service_port, context=args.context, selector=selector,
                                  namespace=args.namespace)
    docs = [efm.transcoder_envoyfilter(descriptor=data, services=names, filter_name=args.filter_name,
                                       options=options, descriptor_path=args.descriptor_path, **common)]
    _warn(efm.size_warnings(docs[0]), args)
    if args.descriptor_path and not args.no_descriptor_configmap:
        cm_name = args.descriptor_configmap or f"grpc-transcoder-{args.service_name}-descriptor"
        check_dns1123_subdomain(cm_name, field="descriptor_configmap")
        cm = efm.descriptor_configmap(cm_name, data, descriptor_path=args.descriptor_path,
                                      namespace=args.namespace)
        _warn(efm.size_warnings(cm), args)
        docs.append(cm)
        patch = efm.annotations_patch(efm.descriptor_volume_annotations(cm_name, descriptor_path=args.descriptor_path))
        ns = args.namespace or "istio-system"
        print(f"meshfilter: note: mount the ConfigMap into the gateway's proxy (it must be in the gateway's "
              f"namespace): kubectl -n {ns} patch deployment {args.gateway_deployment} --type merge -p "
              f"'{json.dumps(patch, separators=(',', ':'))}'", file=sys.stderr)
    if headers:
        docs.append(efm.header_to_metadata_envoyfilter(headers, **common))
    write_output(_dump(docs, args.format, header=args.version), args.output)
    return 0


def _dump(docs: list[dict[str, Any]], fmt: str, *, header: str | None) -> str:
    if fmt == "json":
        body = docs[0] if len(docs) == 1 else {"apiVersion": "v1", "kind": "List", "items": docs}
        return json.dumps(body, indent=2, ensure_ascii=False) + "\n"
    if header is None:
        import yaml

        dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        return yaml.dump(docs[0], Dumper=dumper, sort_keys=False, width=2**31 - 1)
    from meshfilter.transcoder.envoyfilter import render_yaml

    return render_yaml(docs, version=header)
