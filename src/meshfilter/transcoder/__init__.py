"""gRPC-JSON transcoding: compile protos, select services, and render Envoy's transcoder as an Istio
EnvoyFilter (grpc-transcoder's shape) or a standalone Envoy bootstrap. See docs/transcoder.md."""

from meshfilter.transcoder.bootstrap import bootstrap_with_filter, transcoder_bootstrap
from meshfilter.transcoder.compile import compile_proto, compile_protos, googleapis_protos
from meshfilter.transcoder.config import (
    PrintOptions,
    RequestValidationOptions,
    TranscoderOptions,
    transcoder_filter,
    transcoder_typed_config,
)
from meshfilter.transcoder.descriptor import (
    load_descriptor_set,
    select_services,
    unannotated_warnings,
)
from meshfilter.transcoder.envoyfilter import (
    header_to_metadata_envoyfilter,
    proxy_version_regex,
    render_yaml,
    transcoder_envoyfilter,
)

__all__ = [
    "PrintOptions",
    "RequestValidationOptions",
    "TranscoderOptions",
    "bootstrap_with_filter",
    "compile_proto",
    "compile_protos",
    "googleapis_protos",
    "header_to_metadata_envoyfilter",
    "load_descriptor_set",
    "proxy_version_regex",
    "render_yaml",
    "select_services",
    "transcoder_bootstrap",
    "transcoder_envoyfilter",
    "transcoder_filter",
    "transcoder_typed_config",
    "unannotated_warnings",
]
