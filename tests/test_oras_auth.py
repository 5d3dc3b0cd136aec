from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from meshfilter.errors import UsageError
from meshfilter.oras.auth import (
    Credentials,
    auths_entry_for_host,
    credentials_for_host,
    docker_config_path,
    normalize_host,
    parse_challenge,
    resolve_credentials,
)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"auths": {
        "registry.example.com:5000": {"auth": b64("alice:s3cret:with:colons")},
        "https://other.example.com/v1/": {"auth": b64("bob:pw2")},
        "https://index.docker.io/v1/": {"auth": b64("hub:hubpw")},
        "plain.example.com": {"username": "carol", "password": "pw3"},
        "empty.example.com": {},
    }}))
    return p


def test_only_the_asked_host(cfg: Path) -> None:
    assert credentials_for_host("registry.example.com:5000", cfg) == ("alice", "s3cret:with:colons")
    assert credentials_for_host("other.example.com", cfg) == ("bob", "pw2")
    assert credentials_for_host("docker.io", cfg) == ("hub", "hubpw")
    assert credentials_for_host("plain.example.com", cfg) == ("carol", "pw3")
    assert credentials_for_host("registry.example.com", cfg) is None  # port matters
    assert credentials_for_host("empty.example.com", cfg) is None
    assert credentials_for_host("nowhere.example.com", cfg) is None
    entry = auths_entry_for_host("other.example.com", cfg)
    assert entry == {"auth": b64("bob:pw2")}  # the raw entry, for a dockerconfigjson Secret of one host


def test_docker_config_env_and_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cfg: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg.parent))
    assert docker_config_path() == cfg
    assert credentials_for_host("registry.example.com:5000") == ("alice", "s3cret:with:colons")
    monkeypatch.delenv("DOCKER_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert docker_config_path() == tmp_path / "home" / ".docker" / "config.json"
    assert credentials_for_host("registry.example.com:5000") is None  # missing file: no credentials


def test_credential_helper_for_one_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    log = tmp_path / "asked"
    helper.write_text(f"#!/bin/sh\nread host\necho \"$host\" >> {log}\n"
                      "echo '{\"Username\":\"hu\",\"Secret\":\"hs\"}'\n")
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{helper.parent}{os.pathsep}{os.environ['PATH']}")
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"credHelpers": {"helped.example.com": "fake"}}))
    assert credentials_for_host("helped.example.com", p) == ("hu", "hs")
    assert auths_entry_for_host("helped.example.com", p) == {"username": "hu", "password": "hs", "auth": b64("hu:hs")}
    assert credentials_for_host("unhelped.example.com", p) is None
    assert set(log.read_text().split()) == {"helped.example.com"}  # the helper was asked for that host only


def test_flags_win_and_must_come_together(cfg: Path) -> None:
    c = resolve_credentials("registry.example.com:5000", username="u", password="p", docker_config=cfg)
    assert c == Credentials("u", "p", "--username/--password-stdin")
    c = resolve_credentials("registry.example.com:5000", username=None, password=None, docker_config=cfg)
    assert c is not None and c.username == "alice" and str(cfg) in c.source
    with pytest.raises(UsageError, match="go together"):
        resolve_credentials("h", username="u", password=None)


def test_secrets_are_redacted_and_bad_config_names_no_secret(tmp_path: Path) -> None:
    c = Credentials("alice", "topsecret")
    assert "topsecret" not in repr(c) and "topsecret" not in str(c)
    bad = tmp_path / "config.json"
    bad.write_text('{"auths": {"h.example.com": {"auth": "' + b64("nocolon-topsecret") + '"}}}')
    with pytest.raises(UsageError) as exc:
        credentials_for_host("h.example.com", bad)
    assert "topsecret" not in exc.value.line()
    bad.write_text('{"auths": topsecret')
    with pytest.raises(UsageError) as exc:
        credentials_for_host("h.example.com", bad)
    assert "topsecret" not in exc.value.line() and "not readable JSON" in exc.value.line()


def test_parse_challenge() -> None:
    ch = parse_challenge('Bearer realm="https://auth.example.com/token",service="registry.example.com",'
                         'scope="repository:a/b:pull,push"')
    assert ch.scheme == "bearer"
    assert ch.params == {"realm": "https://auth.example.com/token", "service": "registry.example.com",
                         "scope": "repository:a/b:pull,push"}
    assert parse_challenge('Basic realm="meshfilter-test"') .scheme == "basic"


def test_normalize_host() -> None:
    assert normalize_host("https://Registry.Example.com:5000/v2/") == "registry.example.com:5000"
    assert normalize_host("registry-1.docker.io") == "docker.io"
