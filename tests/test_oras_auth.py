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
    assert c == Credentials("u", "p", "`username`/`password`")  # fields; the CLI spells its flags
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


# -- login/logout write the config as docker does; explicit and malformed configs -------------------------

def test_store_and_erase_login_keep_the_rest(tmp_path: Path) -> None:
    from meshfilter.oras.auth import erase_login, store_login

    cfg = tmp_path / "new" / "config.json"
    path = store_login("Registry.Example.com:5000", "alice", "pw:with:colons", docker_config=cfg)
    assert path == cfg and stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert stat.S_IMODE(cfg.parent.stat().st_mode) == 0o700
    entry = {"auth": b64("alice:pw:with:colons")}
    assert json.loads(cfg.read_text()) == {"auths": {"registry.example.com:5000": entry}}
    assert "\t" in cfg.read_text()  # docker's tab-indented layout
    assert credentials_for_host("registry.example.com:5000", cfg) == ("alice", "pw:with:colons")
    assert [p.name for p in cfg.parent.iterdir()] == ["config.json"]  # no temporary copy of the secret left
    # other content survives a second login and a logout
    doc = json.loads(cfg.read_text())
    doc["auths"]["https://other.example.com/v1/"] = {"auth": b64("bob:x")}
    doc["psFormat"] = "table"
    cfg.write_text(json.dumps(doc))
    store_login("docker.io", "hub", "hubpw", docker_config=cfg)
    assert json.loads(cfg.read_text())["auths"]["https://index.docker.io/v1/"] == {"auth": b64("hub:hubpw")}
    assert erase_login("registry.example.com:5000", docker_config=cfg) is True
    left = json.loads(cfg.read_text())
    assert set(left["auths"]) == {"https://other.example.com/v1/", "https://index.docker.io/v1/"}
    assert left["psFormat"] == "table" and stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert erase_login("registry.example.com:5000", docker_config=cfg) is False


def test_login_with_a_credential_helper_gives_it_the_secret_on_stdin(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from meshfilter.oras.auth import erase_login, store_login

    store = tmp_path / "helper-store"
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {tmp_path}/argv\ncase \"$1\" in\n"
                      f"store) cat > {store} ;;\nerase) cat > {store}.erased ;;\n"
                      f"get) cat {store} | sed 's/ServerURL/Server/' ;;\nesac\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}{os.pathsep}{os.environ['PATH']}")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"credsStore": "fake"}))
    store_login("h.example.com", "alice", "s3cret", docker_config=cfg)
    assert json.loads(store.read_text()) == {"ServerURL": "h.example.com", "Username": "alice", "Secret": "s3cret"}
    assert json.loads(cfg.read_text())["auths"] == {"h.example.com": {}}  # docker keeps an empty entry
    assert "s3cret" not in cfg.read_text() and "s3cret" not in (tmp_path / "argv").read_text()
    assert credentials_for_host("h.example.com", cfg) == ("alice", "s3cret")  # read back through the helper
    assert erase_login("h.example.com", docker_config=cfg) is True
    assert (tmp_path / "helper-store.erased").read_text() == "h.example.com"
    assert json.loads(cfg.read_text())["auths"] == {}


def test_an_explicit_docker_config_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(UsageError) as exc:
        auths_entry_for_host("h.example.com", missing)
    assert exc.value.where == "docker_config" and "does not exist" in exc.value.what
    # a missing file at the default location just means no credentials
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-such-dir"))
    assert auths_entry_for_host("h.example.com") is None


def test_malformed_config_hint_names_no_flag(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError) as exc:
        credentials_for_host("h.example.com", bad)
    assert "--" not in exc.value.line() and "`" not in exc.value.line()


def test_deploy_with_a_missing_or_malformed_docker_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13 item 6: a missing --docker-config is an error (it used to emit empty auths), and a malformed
    one gets a hint that names no flag the command lacks."""
    from meshfilter.cli import main

    base = ["deploy", "asm", "--name", "ph", "--label", "app=x", "--image", "r.example.com/a/b:1",
            "--root-id", "propaganda_filter_root", "--with-pull-secret",
            "--parameters", '{"head_tag_name": "route-v", "head_tag_value": "v2"}']
    rc = main([*base, "--docker-config", str(tmp_path / "nope.json")])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert "--docker-config: docker config" in err and "does not exist" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    rc = main([*base, "--docker-config", str(bad)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and err.count("\n") == 1 and "not readable JSON" in err
    assert "--username" not in err and "--password-stdin" not in err
