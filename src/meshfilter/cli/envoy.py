"""`meshfilter envoy run|validate|image`: run a filter in a real Envoy, or validate a bootstrap.

``envoy run`` prints one line on stdout, the listener's URL, once Envoy is ready (``read -r URL``
captures it); everything else goes to stderr. It serves until Ctrl-C or SIGTERM (exit status 130 or
143, see :mod:`meshfilter.cli`). ``--watch`` reloads the filter when its files change: Envoy's hot
restart hands the listen sockets to the new Envoy, so the URL stays the same and no request is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from meshfilter.cli._common import shielded
from meshfilter.envoy import EchoServer, RunningEnvoy, bootstrap, get_backend, validate_bootstrap
from meshfilter.envoy.validate import filter_refusal
from meshfilter.errors import EnvoyError, MeshfilterError, UsageError

DEFAULT_ROOT_ID = "propaganda_filter_root"
WASM_MAGIC = b"\0asm"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("envoy", help="run filters in a real Envoy; validate bootstraps")
    esub = p.add_subparsers(dest="envoy_cmd", metavar="SUBCOMMAND")

    run = esub.add_parser(
        "run", help="start Envoy with a filter in front of an echo upstream (or --upstream)",
        description="Start Envoy with a Wasm or Lua filter in front of an echo upstream (or --upstream). "
        "Prints the listener's URL on stdout once Envoy is ready (capture it with: read -r URL), and "
        "serves until Ctrl-C or SIGTERM (exit status 130 / 143).")
    run.add_argument("--wasm", metavar="MODULE", help="a proxy-wasm module (.wasm)")
    conf = run.add_mutually_exclusive_group()
    conf.add_argument("--config", default=None, help="the plugin configuration (a JSON string)")
    conf.add_argument("--config-file", metavar="FILE", default=None,
                      help="the plugin configuration, read from FILE (watched with --watch)")
    run.add_argument("--root-id", default=None, help=f"the plugin's root id (default: {DEFAULT_ROOT_ID})")
    run.add_argument("--lua", metavar="FILE", help="a Lua script (envoy.filters.http.lua) instead of --wasm")
    run.add_argument("--lua-path", metavar="DIR", action="append", default=None,
                     help="a folder the Lua script's require() searches (DIR/?.lua, DIR/?/init.lua; repeatable)")
    run.add_argument("--upstream", metavar="URL", help="route to this http:// URL instead of the echo upstream")
    run.add_argument("--port", type=int, default=0, help="listener port (default: a free port)")
    run.add_argument("--watch", action="store_true",
                     help="reload when the module, the Lua files or the configuration file change "
                     "(hot restart: same port, no request refused; a version Envoy refuses is not loaded)")
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


# ------------------------------------------------------------------------------ the run's inputs

@dataclass(frozen=True)
class RunInputs:
    """What ``envoy run`` was given, checked (flags that go together, files that exist); the files are
    read by :meth:`bootstrap`, every time it is called (``--watch`` calls it on each change)."""

    wasm: Path | None
    lua: Path | None
    lua_path: tuple[Path, ...]
    config: str | None
    config_file: Path | None
    root_id: str
    port: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunInputs:
        if args.wasm and args.lua:
            raise UsageError("--wasm and --lua are exclusive", where="meshfilter envoy run", hint="give one")
        if args.lua:
            for flag, value in (("--config", args.config), ("--config-file", args.config_file),
                                ("--root-id", args.root_id)):
                if value is not None:
                    raise UsageError(f"a Lua script takes no plugin settings; {flag} goes with --wasm",
                                     where=flag, hint=f"drop {flag}, or put the setting into the script")
        elif args.lua_path:
            raise UsageError("there is no Lua script to search modules for", where="--lua-path",
                             hint="add --lua FILE, or drop --lua-path")
        if not 0 <= args.port <= 65535:
            raise UsageError(f"port {args.port} is out of range", where="--port",
                             hint="give 1-65535, or 0 for a free port")
        lua_path = tuple(Path(d).resolve() for d in args.lua_path or ())
        for given, d in zip(args.lua_path or (), lua_path, strict=True):
            if not d.is_dir():
                raise UsageError(f"{given} is not a folder", where="--lua-path",
                                 hint="give the folder that holds the script's modules (lib/mylibrary.lua "
                                 "for require('lib.mylibrary'))")
        inputs = cls(wasm=Path(args.wasm).resolve() if args.wasm else None,
                     lua=Path(args.lua).resolve() if args.lua else None, lua_path=lua_path,
                     config=args.config, config_file=Path(args.config_file).resolve() if args.config_file else None,
                     root_id=args.root_id if args.root_id is not None else DEFAULT_ROOT_ID, port=args.port)
        inputs.http_filters()  # one clear line now for a missing, unreadable or non-Wasm file
        return inputs

    def watched(self) -> list[Path]:
        """The files whose change reloads the filter: the module or script, the configuration file,
        and every ``.lua`` file under the ``--lua-path`` folders."""
        out = [p for p in (self.wasm, self.lua, self.config_file) if p is not None]
        for d in self.lua_path:
            out += sorted(d.rglob("*.lua"))
        return out

    def http_filters(self) -> list[dict[str, Any]]:
        if self.wasm is not None:
            module = _read(self.wasm, "--wasm", binary=True)
            assert isinstance(module, bytes)
            if not module.startswith(WASM_MAGIC):
                raise UsageError(f"{self.wasm} is not a Wasm module (it does not start with \\0asm)",
                                 where="--wasm", hint="give a .wasm file, e.g. one built by "
                                 "'meshfilter wasm build propagate-header -o FILE.wasm'")
            config = self.config
            if self.config_file is not None:
                text = _read(self.config_file, "--config-file")
                assert isinstance(text, str)
                config = text.strip()
            return [bootstrap.wasm_filter(code=bootstrap.wasm_code(inline=module), configuration=config or "",
                                          root_id=self.root_id)]
        if self.lua is not None:
            code = _read(self.lua, "--lua")
            assert isinstance(code, str)
            return [bootstrap.lua_filter(code, lua_path=[str(d) for d in self.lua_path])]
        return []

    def bootstrap(self, upstream: tuple[str, int], port: int | None = None) -> dict[str, Any]:
        return bootstrap.filter_bootstrap(self.http_filters(), upstream=upstream,
                                          listener_port=self.port if port is None else port)


def _read(path: Path, flag: str, *, binary: bool = False) -> str | bytes:
    try:
        return path.read_bytes() if binary else path.read_text()
    except FileNotFoundError:
        hint = "build one with 'meshfilter wasm build propagate-header -o FILE.wasm'" if flag == "--wasm" else None
        raise UsageError(f"no such file {str(path)!r}", where=flag, hint=hint) from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a text file", where=flag) from None
    except OSError as exc:
        raise UsageError(f"cannot read {str(path)!r}: {exc.strerror}", where=flag) from None


def build_run_bootstrap(args: argparse.Namespace, upstream: tuple[str, int]) -> dict[str, Any]:
    """The bootstrap ``envoy run`` starts Envoy on (for tests and tools)."""
    return RunInputs.from_args(args).bootstrap(upstream)


# ------------------------------------------------------------------------------ run

def cmd_run(args: argparse.Namespace) -> int:
    from meshfilter.util.ports import port_is_free

    inputs = RunInputs.from_args(args)
    if args.watch and args.backend == "container" and args.network != "host":
        raise UsageError("--watch hands the listener over to the next Envoy, which needs host networking",
                         where="--network", hint="drop --network bridge")
    if inputs.port and not port_is_free(inputs.port):
        raise UsageError(f"port {inputs.port} is taken", where="--port",
                         hint="stop what listens there, give another --port, or drop --port for a free one")
    upstream = _upstream(args.upstream) if args.upstream else None
    echo: EchoServer | None = None
    envoy: Any = None
    try:
        if upstream is None:
            echo = EchoServer().start()
            upstream = (echo.host, echo.port)
        options = {"image": args.image, "network": args.network} if args.backend == "container" else {}
        backend = get_backend(args.backend, **options)
        bs = inputs.bootstrap(upstream)
        files = inputs.lua_path
        try:
            if args.watch:
                from meshfilter.envoy.reload import ReloadingEnvoy

                envoy = ReloadingEnvoy(backend, name="meshfilter-run", log_level=args.log_level)
                running: RunningEnvoy = envoy.start(bs, files=files)
            else:
                envoy = running = backend.start(bs, name="meshfilter-run", log_level=args.log_level, files=files)
        except EnvoyError as exc:
            raise _filter_refused(exc, inputs) from None
        print(running.url("main"), flush=True)
        print(f"admin: {running.admin_url}  upstream: http://{upstream[0]}:{upstream[1]}"
              f"{' (echo)' if echo else ''}  (Ctrl-C to stop)", file=sys.stderr, flush=True)
        if args.watch:
            return _watch(envoy, inputs, upstream)
        while True:
            time.sleep(0.5)
            if not running.alive():
                print(running.log_tail(), file=sys.stderr)
                print("meshfilter: error: Envoy exited", file=sys.stderr)
                return 1
    finally:
        def clean_up() -> None:
            if envoy is not None:
                envoy.stop()
            if echo is not None:
                echo.stop()

        shielded(clean_up)


def _filter_refused(exc: EnvoyError, inputs: RunInputs) -> EnvoyError:
    """Envoy's start-up error, named after the filter when the filter itself refused to load."""
    reason = filter_refusal(exc.log_tail)
    if reason is None:
        return exc
    if inputs.wasm is not None:
        return EnvoyError(f"Envoy refused the module {inputs.wasm.name}: {reason}", where="--wasm",
                          hint="fix the module's configuration (--config/--config-file) or --root-id, or the "
                          "module", log_tail=exc.log_tail)
    name = inputs.lua.name if inputs.lua is not None else "the filter"
    return EnvoyError(f"Envoy refused the script {name}: {reason}", where="--lua",
                      hint="fix the script (--lua-path DIR makes require() find its modules)",
                      log_tail=exc.log_tail)


def _watch(envoy: Any, inputs: RunInputs, upstream: tuple[str, int]) -> int:
    """Poll the inputs; on a change, reload and say in one line what changed and what Envoy said."""
    from meshfilter.util.watch import FileWatcher

    watcher = FileWatcher(inputs.watched)
    files = ", ".join(str(p) for p in watcher.paths) or "nothing"
    print(f"watching {files}", file=sys.stderr, flush=True)
    while True:
        changed = watcher.wait_for_change(timeout=0.5)
        if not envoy.alive():
            print(envoy.current.log_tail() if envoy.current else "", file=sys.stderr)
            print("meshfilter: error: Envoy exited", file=sys.stderr)
            return 1
        if not changed:
            continue
        what = ", ".join(p.name for p in changed)
        try:
            bs = inputs.bootstrap(upstream)
        except MeshfilterError as exc:
            print(f"reload: {what} changed; not loaded, still serving the previous version: {exc.line()}",
                  file=sys.stderr, flush=True)
            continue
        result = envoy.reload(bs, files=inputs.lua_path)
        if result.accepted:
            print(f"reload: {what} changed; Envoy accepted it (epoch {result.epoch}, admin "
                  f"{envoy.current.admin_url})", file=sys.stderr, flush=True)
        else:
            print(f"reload: {what} changed; Envoy refused it, still serving the previous version: "
                  f"{result.reason}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ validate

def load_bootstrap_file(path: str) -> dict[str, Any]:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path!r}: {exc.strerror}", where="BOOTSTRAP") from None
    if raw.startswith(WASM_MAGIC):
        raise UsageError(f"{path} is a Wasm module, not a bootstrap", where="BOOTSTRAP",
                         hint="give Envoy's configuration (JSON or YAML); to run a module use "
                         "'meshfilter envoy run --wasm MODULE'")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a text file (a bootstrap is JSON or YAML)", where="BOOTSTRAP") from None
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
