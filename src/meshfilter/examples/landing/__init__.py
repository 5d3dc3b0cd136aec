"""Example gRPC service for filter authors' tests: the LandingService of seed sections 4.1-4.2
(package ``org.feuyeux.grpc``), annotated for HTTP/JSON transcoding.

    python -m meshfilter.examples.landing serve --port 9996
    python -m meshfilter.examples.landing call --server localhost:9996   # or GRPC_SERVER=...
    python -m meshfilter.examples.landing proto                          # the annotated landing.proto

From Python::

    from meshfilter.examples.landing import serve, LandingClient, descriptor_set
    server, port = serve(0)
    with LandingClient(f"127.0.0.1:{port}") as c:
        print(c.talk("0"))
    server.stop(None)
"""

from meshfilter.examples.landing.service import (
    HELLOS,
    LANGUAGE,
    METHODS,
    SERVICE,
    LandingClient,
    LandingServicer,
    descriptor_set,
    messages,
    proto_text,
    run_all,
    serve,
    server_target,
    to_json,
)

__all__ = ["HELLOS", "LANGUAGE", "METHODS", "SERVICE", "LandingClient", "LandingServicer", "descriptor_set",
           "messages", "proto_text", "run_all", "serve", "server_target", "to_json"]
