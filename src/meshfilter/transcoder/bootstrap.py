"""Pure: a standalone Envoy bootstrap running the gRPC-JSON transcoder in front of a gRPC server.

One listener (``main``) with the transcoder HTTP filter then the router, routing everything to the
HTTP/2 cluster ``grpc`` (the gRPC server). The listener's codec is AUTO, so HTTP/1.1 JSON clients and
native gRPC (h2c) clients share it: the transcoder passes native gRPC requests through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from meshfilter.envoy import bootstrap as b
from meshfilter.transcoder.config import TranscoderOptions, transcoder_filter

GRPC_CLUSTER = "grpc"


def bootstrap_with_filter(http_filter: Mapping[str, Any], *, grpc_host: str, grpc_port: int,
                          listener_port: int = 0, listen_host: str = "127.0.0.1", admin_port: int = 0,
                          admin_host: str = "127.0.0.1", timeout: str = "30s") -> dict[str, Any]:
    """A bootstrap running ``http_filter`` (e.g. an EnvoyFilter's ``patch.value``) before the router."""
    listener = b.http_listener("main", listener_port, host=listen_host, http_filters=[dict(http_filter)],
                               routes=[b.route_to_cluster(GRPC_CLUSTER, timeout=timeout)])
    return b.bootstrap(listeners=[listener],
                       clusters=[b.cluster(GRPC_CLUSTER, grpc_host, grpc_port, http2=True)],
                       admin_port=admin_port, admin_host=admin_host)


def transcoder_bootstrap(*, descriptor: bytes, services: Sequence[str], grpc_host: str, grpc_port: int,
                         options: TranscoderOptions | None = None, filter_name: str = "modern",
                         listener_port: int = 0, listen_host: str = "127.0.0.1", admin_port: int = 0,
                         admin_host: str = "127.0.0.1") -> dict[str, Any]:
    """The standalone bootstrap (the CLI's ``envoy_config`` output)."""
    return bootstrap_with_filter(transcoder_filter(descriptor, services, options, name=filter_name),
                                 grpc_host=grpc_host, grpc_port=grpc_port, listener_port=listener_port,
                                 listen_host=listen_host, admin_port=admin_port, admin_host=admin_host)
