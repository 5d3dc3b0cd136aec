"""`meshfilter envoy run|validate|image`: run a filter in a real Envoy, or validate a bootstrap."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from meshfilter.envoy import EchoServer, bootstrap, get_backend, validate_bootstrap
from meshfilter.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("envoy", help="run filters in a real Envoy; validate bootstraps")
    esub = p.add_subparsers(dest="envoy_cmd", metavar="SUBCOMMAND")

    run = esub.add_parser("run", help="start Envoy with a filter in front of an echo upstream (or --upstream)")
    run.add_argument("--wasm", metavar="MODULE", help="a proxy-wasm module (.wasm)")
    run.add_argument("--config", default="", help="the plugin configuration (a JSON string)")
    run.add_argument("--root-id", default="propaganda_filter_root", help="the plugin's root id")
    run.add_argument("--lua", metavar="FILE", help="a Lua script (envoy.filters.http.lua) instead of --wasm")
    run.add_argument("--upstream", metavar="URL", help="route to this http:// URL instead of the echo upstream")
    run.add_argument("--port", type=int, default=0, help="listener port (default: a free port)")
    run.add_argument("--backend", choices=["process", "container"], default="process")
    run.add_argument("--image", help="container backend: Envoy image (default: the locally built meshfilter image)")
    run.add_argument("--network", choices=["host", "bridge"], default="host",
                     help="container backend: host networking (default) or bridge with published ports")
    run.add_argument("--log-level", default="warning", help="Envoy's log level")
    run.set_defaults(handler=cmd_run)

    val = esub.add_parser("validate", help="run `envoy --mode validate` on a bootstrap (JSON or YAML)")
    val.add_argument("bootstrap", metavar="BOOTSTRAP")
    val.set_defaults(handler=cmd_validate)

    try:
        from meshfilter.cli.envoy_image import register_image
    except ImportError:
        pass
    else:
        register_image(esub)


def _upstream(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise UsageError(f"--upstream {url!r} is not an http://HOST[:PORT] URL", where="--upstream",
                         hint="for example --upstream http://127.0.0.1:8080")
    return parts.hostname, parts.port or 80


def build_run_bootstrap(args: argparse.Namespace, upstream: tuple[str, int]) -> dict[str, Any]:
    filters: list[dict[str, Any]] = []
    if args.wasm and args.lua:
        raise UsageError("--wasm and --lua are exclusive", where="meshfilter envoy run", hint="give one")
    if args.wasm:
        path = Path(args.wasm).resolve()
        if not path.is_file():
            raise UsageError(f"no such module {args.wasm!r}", where="--wasm",
                             hint="build one with 'meshfilter wasm build propagate-header -o FILE.wasm'")
        filters.append(bootstrap.wasm_filter(code=bootstrap.wasm_code(path=str(path)),
                                             configuration=args.config, root_id=args.root_id))
    if args.lua:
        try:
            code = Path(args.lua).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read {args.lua!r}: {exc.strerror}", where="--lua") from None
        filters.append(bootstrap.lua_filter(code))
    return bootstrap.filter_bootstrap(filters, upstream=upstream, listener_port=args.port)


def cmd_run(args: argparse.Namespace) -> int:
    echo = None
    if args.upstream:
        upstream = _upstream(args.upstream)
    else:
        echo = EchoServer().start()
        upstream = (echo.host, echo.port)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    envoy = None
    try:
        bs = build_run_bootstrap(args, upstream)
        files = tuple(Path(f).resolve() for f in (args.wasm,) if f)
        options = {"image": args.image, "network": args.network} if args.backend == "container" else {}
        envoy = get_backend(args.backend, **options).start(bs, name="meshfilter-run", log_level=args.log_level,
                                                           files=files)
        print(envoy.url("main"), flush=True)
        print(f"admin: {envoy.admin_url}  upstream: http://{upstream[0]}:{upstream[1]}"
              f"{' (echo)' if echo else ''}  (Ctrl-C to stop)", file=sys.stderr, flush=True)
        try:
            while not stop.wait(0.5):
                if not envoy.alive():
                    print(envoy.log_tail(), file=sys.stderr)
                    print("meshfilter: error: Envoy exited", file=sys.stderr)
                    return 1
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        if envoy is not None:
            envoy.stop()
        if echo is not None:
            echo.stop()
        signal.signal(signal.SIGTERM, previous)


def load_bootstrap_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path!r}: {exc.strerror}", where="BOOTSTRAP") from None
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise UsageError(f"not valid JSON/YAML: {str(exc).splitlines()[0]}", where=path) from None
    if not isinstance(data, dict):
        raise UsageError("a bootstrap must be a mapping", where=path)
    return data


def cmd_validate(args: argparse.Namespace) -> int:
    load_bootstrap_file(args.bootstrap)  # one clear line for unreadable input
    validate_bootstrap(Path(args.bootstrap).resolve())
    print(f"{args.bootstrap}: OK (envoy --mode validate)")
    return 0
