"""Registry credentials and authentication challenges.

* Docker config: ``$DOCKER_CONFIG/config.json`` when DOCKER_CONFIG is set, else ``~/.docker/config.json``.
  Only the entry for the ONE host asked for is read out (``auths``, then ``credHelpers``/``credsStore``
  through ``docker-credential-<helper> get``).
* Challenges: ``WWW-Authenticate: Basic ...`` answered with the credentials; ``Bearer realm=...,service=...,
  scope=...`` answered by fetching a token from the realm (with the credentials as basic auth if any).

Secrets never leave this module in text form: :class:`Credentials` redacts its repr, and every error
names the host and where the credentials came from, never their value.
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

_DOCKER_HUB = {"docker.io", "index.docker.io", "registry-1.docker.io"}


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


def load_docker_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UsageError("docker config is not readable JSON", where=str(path),
                         hint="fix or remove the file, or use --username/--password-stdin") from None
    return doc if isinstance(doc, dict) else {}


def normalize_host(key: str) -> str:
    """'https://host:5000/v1/' -> 'host:5000'; Docker Hub aliases -> 'docker.io'."""
    host = re.sub(r"^[a-z]+://", "", key.strip()).split("/", 1)[0].lower()
    return "docker.io" if host in _DOCKER_HUB else host


def _helper_get(helper: str, host: str) -> dict[str, str] | None:
    binary = f"docker-credential-{helper}"
    try:
        proc = subprocess.run([binary, "get"], input=host.encode(), capture_output=True, timeout=30, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        payload = json.loads(proc.stdout)
        return {"username": str(payload["Username"]), "password": str(payload["Secret"])}
    except (ValueError, KeyError, TypeError):
        return None


def auths_entry_for_host(host: str, docker_config_path: str | os.PathLike[str] | None = None
                         ) -> dict[str, Any] | None:
    """The raw ``auths`` entry for ``host`` only (helper credentials resolved into username/password/auth)."""
    path = _config_path(docker_config_path)
    cfg = load_docker_config(path)
    want = normalize_host(host)
    auths = cfg.get("auths") if isinstance(cfg.get("auths"), dict) else {}
    assert isinstance(auths, dict)
    for key, entry in auths.items():
        if normalize_host(key) == want and isinstance(entry, dict) and (
                entry.get("auth") or entry.get("username") or entry.get("identitytoken")):
            return dict(entry)
    helpers = cfg.get("credHelpers") if isinstance(cfg.get("credHelpers"), dict) else {}
    assert isinstance(helpers, dict)
    helper = next((h for k, h in helpers.items() if normalize_host(k) == want), None) or cfg.get("credsStore")
    if isinstance(helper, str) and helper:
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
                             hint=f"log in again to {host}")
        return user, pw
    if entry.get("username") and entry.get("password") is not None:
        return str(entry["username"]), str(entry["password"])
    return None


def resolve_credentials(host: str, *, username: str | None, password: str | None,
                        docker_config: str | os.PathLike[str] | None = None) -> Credentials | None:
    """Explicit flags win; otherwise the docker config entry for this host only."""
    if username is not None or password is not None:
        if not username or password is None:
            raise UsageError("--username and --password-stdin go together", where="--username",
                             hint="pass both, e.g. echo \"$PASS\" | meshfilter oras push --username U "
                                  "--password-stdin ...")
        return Credentials(username, password, "--username/--password-stdin")
    found = credentials_for_host(host, docker_config)
    if found:
        return Credentials(found[0], found[1], f"docker config {docker_config_path(docker_config)}")
    return None


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
            return (f"log in: pass --username U --password-stdin, or add {self.host} to the docker config "
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
            resp = self.session.get(realm, params=params, headers=headers, verify=self.verify, timeout=30)
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
