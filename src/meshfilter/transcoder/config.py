"""Pure: the ``typed_config`` of Envoy's gRPC-JSON transcoder filter from options.

Field names follow ``envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder``.
Only options that differ from Envoy's defaults are emitted, except ``print_options``, which is
always written in full (grpc-transcoder's shape).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TRANSCODER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder"
LEGACY_FILTER_NAME = "envoy.grpc_json_transcoder"
MODERN_FILTER_NAME = "envoy.filters.http.grpc_json_transcoder"
UINT32_MAX = 2**32 - 1
# GrpcJsonTranscoder.UrlUnescapeSpec; the first is Envoy's default
URL_UNESCAPE_SPECS = ("ALL_CHARACTERS_EXCEPT_RESERVED", "ALL_CHARACTERS_EXCEPT_SLASH", "ALL_CHARACTERS")
# the boolean top-level options, in the proto's field order; written only when true
BOOL_OPTIONS = ("match_incoming_request_route", "auto_mapping", "ignore_unknown_query_parameters",
                "convert_grpc_status", "query_param_unescape_plus", "match_unregistered_custom_verb",
                "case_insensitive_enum_parsing", "capture_unknown_query_parameters")


@dataclass(frozen=True)
class PrintOptions:
    """``print_options``; defaults are grpc-transcoder's (not Envoy's, which are all false)."""

    add_whitespace: bool = True
    always_print_primitive_fields: bool = True
    always_print_enums_as_ints: bool = False
    preserve_proto_field_names: bool = False
    stream_newline_delimited: bool = False
    stream_sse_style_delimited: bool = False

    def to_dict(self) -> dict[str, bool]:
        out = {
            "add_whitespace": self.add_whitespace,
            "always_print_primitive_fields": self.always_print_primitive_fields,
            "always_print_enums_as_ints": self.always_print_enums_as_ints,
            "preserve_proto_field_names": self.preserve_proto_field_names,
        }
        if self.stream_newline_delimited:
            out["stream_newline_delimited"] = True
        if self.stream_sse_style_delimited:
            out["stream_sse_style_delimited"] = True
        return out


@dataclass(frozen=True)
class RequestValidationOptions:
    reject_unknown_method: bool = False
    reject_unknown_query_parameters: bool = False
    reject_binding_body_field_collisions: bool = False

    def to_dict(self) -> dict[str, bool]:
        return {k: v for k, v in (("reject_unknown_method", self.reject_unknown_method),
                                  ("reject_unknown_query_parameters", self.reject_unknown_query_parameters),
                                  ("reject_binding_body_field_collisions",
                                   self.reject_binding_body_field_collisions)) if v}


@dataclass(frozen=True)
class TranscoderOptions:
    print_options: PrintOptions = field(default_factory=PrintOptions)
    request_validation: RequestValidationOptions = field(default_factory=RequestValidationOptions)
    convert_grpc_status: bool = False
    auto_mapping: bool = False
    ignored_query_parameters: tuple[str, ...] = ()
    ignore_unknown_query_parameters: bool = False
    max_request_body_size: int | None = None
    max_response_body_size: int | None = None
    match_incoming_request_route: bool = False
    url_unescape_spec: str | None = None
    query_param_unescape_plus: bool = False
    match_unregistered_custom_verb: bool = False
    case_insensitive_enum_parsing: bool = False
    capture_unknown_query_parameters: bool = False

    def __post_init__(self) -> None:
        if self.url_unescape_spec is not None and self.url_unescape_spec not in URL_UNESCAPE_SPECS:
            from meshfilter.errors import UsageError

            raise UsageError(f"{self.url_unescape_spec!r} is not a UrlUnescapeSpec", where="url_unescape_spec",
                             hint=f"use one of {', '.join(URL_UNESCAPE_SPECS)}")
        for name in ("max_request_body_size", "max_response_body_size"):
            v = getattr(self, name)
            if v is not None and not 0 < v <= UINT32_MAX:
                from meshfilter.errors import UsageError

                raise UsageError(f"{name} must be between 1 and {UINT32_MAX} bytes, got {v}",
                                 where=name, hint="give a positive byte count")


def transcoder_typed_config(descriptor: bytes | None, services: Sequence[str],
                            options: TranscoderOptions | None = None, *,
                            descriptor_path: str | None = None) -> dict[str, Any]:
    """The GrpcJsonTranscoder typed_config: the descriptor inlined as base64 ``proto_descriptor_bin``,
    or, with ``descriptor_path``, ``proto_descriptor`` naming that file on the proxy."""
    o = options or TranscoderOptions()
    cfg: dict[str, Any] = {"@type": TRANSCODER_TYPE}
    if descriptor_path is not None:
        cfg["proto_descriptor"] = descriptor_path
    else:
        if descriptor is None:
            raise ValueError("transcoder_typed_config needs the descriptor or descriptor_path")
        cfg["proto_descriptor_bin"] = base64.b64encode(descriptor).decode("ascii")
    cfg["services"] = list(services)
    cfg["print_options"] = o.print_options.to_dict()
    # convert_grpc_status and auto_mapping first: the key order meshfilter always wrote
    for name in ("convert_grpc_status", "auto_mapping"):
        if getattr(o, name):
            cfg[name] = True
    if o.ignored_query_parameters:
        cfg["ignored_query_parameters"] = list(o.ignored_query_parameters)
    for name in BOOL_OPTIONS:
        if getattr(o, name) and name not in cfg:
            cfg[name] = True
    if o.url_unescape_spec:
        cfg["url_unescape_spec"] = o.url_unescape_spec
    rv = o.request_validation.to_dict()
    if rv:
        cfg["request_validation_options"] = rv
    if o.max_request_body_size is not None:
        cfg["max_request_body_size"] = o.max_request_body_size
    if o.max_response_body_size is not None:
        cfg["max_response_body_size"] = o.max_response_body_size
    return cfg


def resolve_filter_name(name: str) -> str:
    """``legacy`` (grpc-transcoder's ``envoy.grpc_json_transcoder``), ``modern``
    (``envoy.filters.http.grpc_json_transcoder``) or a literal filter name."""
    if name == "modern":
        return MODERN_FILTER_NAME
    if name in ("legacy", ""):
        return LEGACY_FILTER_NAME
    return name


def transcoder_filter(descriptor: bytes | None, services: Sequence[str], options: TranscoderOptions | None = None,
                      *, name: str = "modern", descriptor_path: str | None = None) -> dict[str, Any]:
    """The HTTP filter entry ``{name, typed_config}`` (Envoy picks the extension by ``@type``)."""
    return {"name": resolve_filter_name(name),
            "typed_config": transcoder_typed_config(descriptor, services, options, descriptor_path=descriptor_path)}
