"""Registry credentials: the docker config (read, and written by login/logout), and authentication challenges.

* Docker config: the file given explicitly (``docker_config``; a missing one is an error), else
  ``$DOCKER_CONFIG/config.json`` when DOCKER_CONFIG is set, else ``~/.docker/config.json`` (a missing default
  file just means no credentials). Only the entry for the ONE host asked for is read out (``auths``, exact key
  first, then any key naming that host; then ``credHelpers``/``credsStore`` through
  ``docker-credential-<helper> get``).
* Login/logout write the config as docker does: ``auths[host] = {"auth": base64(user:password)}`` (or, with a
  credential helper configured for the host, the secret goes to ``docker-credential-<helper> store`` on its
  stdin and the config keeps an empty entry), other content kept, written atomically with mode 0600.
* Challenges: ``WWW-Authenticate: Basic ...`` answered with the credentials; ``Bearer realm=...,service=...,
  scope=...`` answered by fetching a token from the realm (with the credentials as basic auth if any).

Secrets never leave this module in text form: :class:`Credentials` redacts its repr, every error names the
host and where the credentials came from, never their value, and a helper gets the secret on stdin only.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from meshfilter.errors import AuthError, RegistryError, UsageError
from meshfilter.util.fs import atomic_write_bytes

_DOCKER_HUB = {"docker.io", "index.docker.io", "registry-1.docker.io"}
DOCKER_HUB_KEY = "https://index.docker.io/v1/"  # the key docker writes for Docker Hub
EXPLICIT_SOURCE = "`username`/`password`"       # credentials given directly (the CLI spells its flags)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str = "flags"  # where they came from, for error hints (never the value)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<redacted>, source={self.source!r})"

    def basic(self) -> str:
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def docker_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("DOCKER_CONFIG")
    if env:
        return Path(env) / "config.json"
    return Path.home() / ".docker" / "config.json"


_config_path = docker_config_path


def load_docker_config(path: Path, *, explicit: bool = False) -> dict[str, Any]:
    """The config document; ``{}`` for a missing default file. A file named explicitly must exist."""
    if not path.exists():
        if explicit:
            raise UsageError(f"docker config {path} does not exist", where="docker_config",
                             hint="give the path of an existing config.json, or leave `docker_config` out to use "
                                  "$DOCKER_CONFIG/config.json or ~/.docker/config.json")
        return {}
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UsageError("docker config is not readable JSON", where=str(path),
                         hint="fix the JSON, or remove the file (it only holds registry logins)") from None
    if not isinstance(doc, dict):
        raise UsageError("docker config is not a JSON object", where=str(path),
                         hint="fix the JSON, or remove the file (it only holds registry logins)")
    return doc


def normalize_host(key: str) -> str:
    """'https://host:5000/v1/' -> 'host:5000'; Docker Hub aliases -> 'docker.io'."""
    host = re.sub(r"^[a-z]+://", "", key.strip()).split("/", 1)[0].lower()
    return "docker.io" if host in _DOCKER_HUB else host


def _helper(helper: str, action: str, payload: bytes) -> subprocess.CompletedProcess[bytes] | None:
    """Run ``docker-credential-<helper> <action>`` with ``payload`` on stdin (secrets never in argv)."""
    try:
        return subprocess.run([f"docker-credential-{helper}", action], input=payload, capture_output=True,
                              timeout=30, check=False)
    except (FileNotFoundError, PermissionError, subprocess.TimeoutExpired):
        return None


def _helper_get(helper: str, host: str) -> dict[str, str] | None:
    proc = _helper(helper, "get", host.encode())
    if proc is None or proc.returncode != 0:
        return None
    try:
        payload = json.loads(proc.stdout)
        return {"username": str(payload["Username"]), "password": str(payload["Secret"])}
    except (ValueError, KeyError, TypeError):
        return None


def _helper_for(cfg: dict[str, Any], want: str) -> str | None:
    """The credential helper docker would use for host ``want``: ``credHelpers[host]``, else ``credsStore``."""
    helpers = cfg.get("credHelpers") if isinstance(cfg.get("credHelpers"), dict) else {}
    assert isinstance(helpers, dict)
    helper = next((h for k, h in helpers.items() if normalize_host(k) == want), None) or cfg.get("credsStore")
    return helper if isinstance(helper, str) and helper else None


def auths_entry_for_host(host: str, docker_config_path: str | os.PathLike[str] | None = None
                         ) -> dict[str, Any] | None:
    """The raw ``auths`` entry for ``host`` only (helper credentials resolved into username/password/auth)."""
    path = _config_path(docker_config_path)
    cfg = load_docker_config(path, explicit=bool(docker_config_path))
    want = normalize_host(host)
    auths = cfg.get("auths") if isinstance(cfg.get("auths"), dict) else {}
    assert isinstance(auths, dict)
    keys = sorted(auths, key=lambda k: k != host)  # the exact key first, as docker looks it up
    for key in keys:
        entry = auths[key]
        if normalize_host(key) == want and isinstance(entry, dict) and (
                entry.get("auth") or entry.get("username") or entry.get("identitytoken")):
            return dict(entry)
    helper = _helper_for(cfg, want)
    if helper:
        got = _helper_get(helper, host)
        if got:
            return {**got, "auth": base64.b64encode(f"{got['username']}:{got['password']}".encode()).decode()}
    return None


def credentials_for_host(host: str, docker_config_path: str | os.PathLike[str] | None = None
                         ) -> tuple[str, str] | None:
    """(username, password) for ``host`` from the docker config, or None."""
    entry = auths_entry_for_host(host, docker_config_path)
    if not entry:
        return None
    if entry.get("auth"):
        try:
            user, sep, pw = base64.b64decode(str(entry["auth"])).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            user, sep, pw = "", "", ""
        if not sep:
            raise UsageError(f"docker config entry for {host} has an 'auth' that is not base64 user:password",
                             where=str(_config_path(docker_config_path)),
                             hint=f"log in again to {host} (meshfilter oras login {host})")
        return user, pw
    if entry.get("username") and entry.get("password") is not None:
        return str(entry["username"]), str(entry["password"])
    return None


def resolve_credentials(host: str, *, username: str | None, password: str | None,
                        docker_config: str | os.PathLike[str] | None = None) -> Credentials | None:
    """Explicit credentials win; otherwise the docker config entry for this host only."""
    if username is not None or password is not None:
        if not username or password is None:
            raise UsageError("`username` and `password` go together", where="username",
                             hint="give both, or neither to use the docker config")
        return Credentials(username, password, EXPLICIT_SOURCE)
    found = credentials_for_host(host, docker_config)
    if found:
        return Credentials(found[0], found[1], f"docker config {docker_config_path(docker_config)}")
    return None


def registry_key(host: str) -> str:
    """The ``auths`` key docker writes for a login to ``host`` (Docker Hub has its historical URL)."""
    norm = normalize_host(host)
    return DOCKER_HUB_KEY if norm == "docker.io" else norm


def _write_docker_config(path: Path, cfg: dict[str, Any]) -> None:
    """Write the config as docker does (tab-indented JSON) atomically, mode 0600, in a 0700 directory if new.
    The temporary file is created 0600 in the same directory, so the secret is never in a readable file."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    atomic_write_bytes(path, json.dumps(cfg, indent="\t").encode() + b"\n", mode=0o600)


def store_login(host: str, username: str, password: str, *,
                docker_config: str | os.PathLike[str] | None = None) -> Path:
    """Record a login to ``host`` in the docker config (see the module docstring). Returns the config path."""
    path = _config_path(docker_config)
    cfg = load_docker_config(path)
    key, want = registry_key(host), normalize_host(host)
    auths = cfg.get("auths")
    if not isinstance(auths, dict):
        auths = cfg["auths"] = {}
    helper = _helper_for(cfg, want)
    if helper:
        payload = json.dumps({"ServerURL": key, "Username": username, "Secret": password}).encode()
        proc = _helper(helper, "store", payload)
        if proc is None or proc.returncode != 0:
            raise AuthError(f"credential helper docker-credential-{helper} could not store the login",
                            where=str(path), hint=f"check that docker-credential-{helper} is installed and works")
        auths[key] = {}
    else:
        auths[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    _write_docker_config(path, cfg)
    return path


def erase_login(host: str, *, docker_config: str | os.PathLike[str] | None = None) -> bool:
    """Remove every ``auths`` entry naming ``host`` (and the helper's copy). False if there was none."""
    path = _config_path(docker_config)
    cfg = load_docker_config(path)
    want = normalize_host(host)
    auths = cfg.get("auths") if isinstance(cfg.get("auths"), dict) else {}
    assert isinstance(auths, dict)
    keys = [k for k in auths if normalize_host(k) == want]
    helper = _helper_for(cfg, want)
    erased = False
    if helper:
        proc = _helper(helper, "erase", registry_key(host).encode())
        erased = proc is not None and proc.returncode == 0
    if not keys:
        return erased
    for k in keys:
        del auths[k]
    _write_docker_config(path, cfg)
    return True


@dataclass(frozen=True)
class Challenge:
    scheme: str              # "basic" | "bearer" | other, lowercase
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in re.finditer(r'([A-Za-z_]+)\s*=\s*(?:"([^"]*)"|([^,\s]+))', rest)}
    return Challenge(scheme.lower(), params)


class Authenticator:
    """Answers 401 challenges for one registry host; keeps the Authorization header it earned."""

    def __init__(self, host: str, credentials: Credentials | None, session: requests.Session,
                 verify: bool | str) -> None:
        self.host = host
        self.credentials = credentials
        self.session = session
        self.verify = verify
        self.header: dict[str, str] = {}
        self._tokens: dict[str, str] = {}  # scope -> bearer token

    def _hint(self) -> str:
        if self.credentials is None:
            return (f"log in: pass `username` U `password`, or add {self.host} to the docker config "
                    f"({docker_config_path()})")
        return f"check the credentials from {self.credentials.source} for {self.host}"

    def fail(self, status: int) -> AuthError:
        what = ("authentication required (401)" if status == 401 and self.credentials is None else
                "credentials rejected (401)" if status == 401 else f"access denied ({status})")
        return AuthError(what, where=self.host, hint=self._hint())

    def answer(self, response: requests.Response) -> bool:
        """Update ``self.header`` for the challenge in ``response``; False if nothing new can be tried."""
        raw = response.headers.get("WWW-Authenticate", "")
        ch = parse_challenge(raw) if raw else Challenge("basic", {})
        if ch.scheme == "basic":
            if self.credentials is None:
                return False
            new = {"Authorization": "Basic " + self.credentials.basic()}
            if new == self.header:
                return False
            self.header = new
            return True
        if ch.scheme == "bearer":
            scope = ch.params.get("scope", "")
            token = self._tokens.get(scope)
            if token is not None and self.header.get("Authorization") == "Bearer " + token:
                return False  # this very token was refused
            if token is None:
                token = self._fetch_token(ch)
                self._tokens[scope] = token
            self.header = {"Authorization": "Bearer " + token}
            return True
        return False

    def _fetch_token(self, ch: Challenge) -> str:
        realm = ch.params.get("realm")
        if not realm:
            raise AuthError("bearer challenge without realm", where=self.host)
        params = {k: v for k, v in (("service", ch.params.get("service")), ("scope", ch.params.get("scope")))
                  if v}
        headers = {"Accept": "application/json"}
        if self.credentials is not None:
            headers["Authorization"] = "Basic " + self.credentials.basic()
        try:
            resp = self.session.get(realm, params=params, headers=headers, verify=self.verify, timeout=30,
                                    proxies=requests.utils.get_environ_proxies(realm))
        except requests.RequestException as exc:
            raise RegistryError(f"token service unreachable ({type(exc).__name__})", where=realm.split("?")[0],
                                hint="check the registry's auth realm is reachable") from None
        if resp.status_code in (401, 403):
            raise self.fail(401 if self.credentials else resp.status_code)
        if resp.status_code != 200:
            raise AuthError(f"token service answered {resp.status_code}", where=realm.split("?")[0])
        try:
            data = resp.json()
            token = data.get("token") or data.get("access_token")
        except ValueError:
            token = None
        if not isinstance(token, str) or not token:
            raise AuthError("token service answered without a token", where=realm.split("?")[0])
        return token
