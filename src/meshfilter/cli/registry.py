"""``meshfilter registry serve``: a local OCI registry (Debian's docker-registry) on loopback.

The same :class:`meshfilter.oras.server.RegistryServer` the pytest plugin's ``oci_registry`` fixtures run.
Prints the URL on stdout (one line, once the registry answers) and how to talk to it on stderr; stops on
Ctrl-C or SIGTERM, and its registry dies with it even on SIGKILL.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from meshfilter.errors import RegistryError
from meshfilter.oras.server import RegistryServer, htpasswd_users
from meshfilter.util.fs import atomic_write_text

DEFAULT_PORT = 5000
GENERATED_USER = "meshfilter"


def _say(text: str) -> None:
    print(f"meshfilter: {text}", file=sys.stderr)


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt("SIGTERM")


def cmd_serve(args: argparse.Namespace) -> int:
    htpasswd = Path(args.htpasswd) if args.htpasswd else None
    users: dict[str, str] = {}
    password_file: Path | None = None
    if htpasswd is not None and not htpasswd.exists():
        password_file = htpasswd.with_name(htpasswd.name + ".password")
        users[GENERATED_USER] = secrets.token_urlsafe(18)
    server = RegistryServer(storage=args.storage, port=args.port, htpasswd=htpasswd, users=users, tls=args.tls)
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        server.start()
        if password_file is not None:
            atomic_write_text(password_file, users[GENERATED_USER] + "\n", mode=0o600)
        print(server.url, flush=True)
        storage = f"{server.data_dir} (kept)" if args.storage else f"{server.data_dir} (removed on exit)"
        _say(f"registry ready at {server.url}: Debian's docker-registry, pid {server.pid}, storage {storage}")
        conn = "--plain-http" if server.plain_http else f"--ca-file {server.ca_file}"
        if htpasswd is None:
            _say(f"login: none needed; e.g. meshfilter oras push {server.host}/REPO:TAG MODULE.wasm {conn}")
        elif password_file is not None:
            _say(f"login: meshfilter oras login {server.host} --username {GENERATED_USER} --password-stdin "
                 f"{conn} < {password_file}   (user added to {htpasswd})")
        else:
            names = ", ".join(htpasswd_users(htpasswd))
            _say(f"login: printf %s \"$PASSWORD\" | meshfilter oras login {server.host} --username USER "
                 f"--password-stdin {conn}   (users in {htpasswd}: {names})")
        _say("Ctrl-C stops it")
        code = server.wait()
        raise RegistryError(f"the registry exited by itself with {code}; log tail: {server.log_tail(5)!r}",
                            where=server.url, hint="see the registry's log")
    except KeyboardInterrupt:
        server.stop()
        _say("registry stopped" + ("" if args.storage else "; its temporary storage removed"))
        raise
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def register(sub: Any) -> None:
    p = sub.add_parser("registry", help="a local OCI registry (Debian's docker-registry) on loopback")
    s = p.add_subparsers(dest="registry_cmd", metavar="SUBCOMMAND", parser_class=type(p))
    s.required = True
    serve = s.add_parser("serve", help="run a registry on 127.0.0.1 until Ctrl-C; prints its URL",
                         description=__doc__)
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)")
    serve.add_argument("--storage", metavar="DIR",
                       help="keep the registry's data in DIR (default: a temporary directory, removed on exit)")
    serve.add_argument("--htpasswd", metavar="FILE",
                       help="require basic auth from this htpasswd file (bcrypt); if FILE does not exist it is "
                            f"created with user {GENERATED_USER!r} and a random password in FILE.password (0600)")
    serve.add_argument("--tls", action="store_true",
                       help="serve HTTPS with a throwaway CA (its path is printed: pass it as --ca-file)")
    serve.set_defaults(handler=cmd_serve)


__all__ = ["cmd_serve", "register"]
