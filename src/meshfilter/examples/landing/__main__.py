"""``python -m meshfilter.examples.landing serve|call|proto``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from meshfilter.examples.landing import service

    p = argparse.ArgumentParser(prog="python -m meshfilter.examples.landing",
                                description="The LandingService example (four gRPC models).")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the gRPC server until SIGTERM/SIGINT")
    s.add_argument("--port", type=int, default=service.DEFAULT_PORT, help="port (0 picks a free one)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    c = sub.add_parser("call", help="run all four models against a server and print the results")
    c.add_argument("--server", default=None,
                   help="HOST[:PORT] (default: $GRPC_SERVER, else localhost; port 9996 if omitted)")
    sub.add_parser("proto", help="print the annotated landing.proto")
    args = p.parse_args(argv)

    if args.cmd == "proto":
        sys.stdout.write(service.proto_text())
        return 0
    if args.cmd == "call":
        import grpc

        target = service.server_target(args.server)
        try:
            print(json.dumps(service.run_all(target), indent=2, ensure_ascii=False))
        except grpc.RpcError as exc:
            print(f"landing: error: {target}: {exc.code().name}: {exc.details()} "
                  "(hint: start the server with `python -m meshfilter.examples.landing serve`)", file=sys.stderr)
            return 1
        return 0
    try:
        server, port = service.serve(args.port, args.host)
    except (OSError, RuntimeError) as exc:
        print(f"landing: error: {args.host}:{args.port}: cannot listen ({exc}) (hint: pick another --port)",
              file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"LandingService listening on {args.host}:{port}", flush=True)
    stop.wait()
    server.stop(grace=1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
