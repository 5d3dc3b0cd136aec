"""Registry operations oras-style, against real registries: copy, tags, login/logout (checked with skopeo)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshfilter.cli import main
from meshfilter.oras.client import RegistryClient, resolve_digest
from meshfilter.oras.formats import OCI_INDEX, OCI_MANIFEST, build_artifact, serialize_manifest
from meshfilter.oras.layout import LayoutStore, read_layout, write_layout
from meshfilter.oras.runtime_config import build_runtime_config
from meshfilter.testing.registry import RegistryServer, fake_module

pytestmark = pytest.mark.registry
ROOT = "propaganda_filter_root"
RC = build_runtime_config([ROOT]).to_bytes()
CMD = [sys.executable, "-m", "meshfilter"]


@pytest.fixture(scope="module")
def src_reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("reg-src"), "open") as server:
        yield server


@pytest.fixture(scope="module")
def auth_reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("reg-dst"), "htpasswd") as server:
        yield server


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def login(reg: RegistryServer, cfg: Path, password: str | None = None, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CMD, "oras", "login", reg.host, "--username", reg.username or "", "--password-stdin",
                           "--plain-http", "--docker-config", str(cfg), *extra],
                          input=(password if password is not None else reg.password or "") + "\n",
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "DOCKER_CONFIG": str(cfg.parent / "unused")})


# -- login / logout ---------------------------------------------------------------------------------------

def test_login_writes_docker_auths_like_docker_and_the_secret_nowhere_else(auth_reg: RegistryServer,
                                                                          tmp_path: Path) -> None:
    secret = auth_reg.password
    assert secret and auth_reg.username
    home = tmp_path / "home"
    cfg = home / ".docker" / "config.json"
    wrong = login(auth_reg, cfg, "Wr0ng-" + secret[::-1])
    assert wrong.returncode == 1 and "credentials rejected (401)" in wrong.stderr and wrong.stderr.count("\n") == 1
    assert not cfg.exists()  # nothing written for credentials that do not work
    ok = login(auth_reg, cfg)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"Login Succeeded ({auth_reg.host} in {cfg})")
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600 and stat.S_IMODE(cfg.parent.stat().st_mode) == 0o700
    token = base64.b64encode(f"{auth_reg.username}:{secret}".encode()).decode()
    assert json.loads(cfg.read_text()) == {"auths": {auth_reg.host: {"auth": token}}}
    # the secret is in no output and in no other file (no temporary copy left beside the config either)
    for text in (ok.stdout, ok.stderr, wrong.stdout, wrong.stderr):
        assert secret not in text and token not in text
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != cfg:
            data = path.read_bytes()
            assert secret.encode() not in data and token.encode() not in data, path
    assert secret.encode() not in cfg.read_bytes()  # only its base64 form, as docker writes it
    # an independent client reads our config: skopeo with it as its authfile
    module = tmp_path / "m.wasm"
    module.write_bytes(fake_module(10_000))
    env = {**os.environ, "DOCKER_CONFIG": str(cfg.parent)}
    push = subprocess.run([*CMD, "oras", "push", f"{auth_reg.host}/logged/in:1", str(module), "--root-id", ROOT,
                           "--plain-http"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert push.returncode == 0, push.stderr
    sk = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "--authfile", str(cfg),
                         f"docker://{auth_reg.host}/logged/in:1"], capture_output=True, timeout=60, check=False)
    assert sk.returncode == 0, sk.stderr.decode()
    # logout removes it; then the registry asks again
    out = subprocess.run([*CMD, "oras", "logout", auth_reg.host, "--docker-config", str(cfg)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0 and out.stdout == f"Removing login credentials for {auth_reg.host}\n"
    assert json.loads(cfg.read_text()) == {"auths": {}} and stat.S_IMODE(cfg.stat().st_mode) == 0o600
    again = subprocess.run([*CMD, "oras", "logout", auth_reg.host, "--docker-config", str(cfg)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0 and again.stdout == f"Not logged in to {auth_reg.host}\n"
    denied = subprocess.run([*CMD, "oras", "inspect", f"{auth_reg.host}/logged/in:1", "--plain-http"],
                            capture_output=True, text=True, env=env, timeout=60, check=False)
    assert denied.returncode == 1 and "authentication required (401)" in denied.stderr


def test_login_to_a_token_registry(tmp_path: Path) -> None:
    with RegistryServer(tmp_path / "reg", "token") as treg:
        cfg = tmp_path / "docker" / "config.json"
        ok = login(treg, cfg)
        assert ok.returncode == 0, ok.stderr
        assert treg.issuer is not None and treg.issuer.issued  # the check went through the token service
        module = tmp_path / "m.wasm"
        module.write_bytes(fake_module(10_000))
        push = subprocess.run([*CMD, "oras", "push", f"{treg.host}/tok/in:1", str(module), "--root-id", ROOT,
                               "--plain-http", "--docker-config", str(cfg)], capture_output=True, text=True,
                              timeout=60, check=False)
        assert push.returncode == 0, push.stderr


def test_login_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = cli(["oras", "login", "localhost:5000"], capsys)
    assert rc == 2 and "needs --username U and --password-stdin" in err and err.count("\n") == 1
    rc, out, err = cli(["oras", "login", "localhost:5000/some/repo", "--username", "u", "--password-stdin"], capsys)
    assert rc == 2 and "is not a registry host[:port]" in err


# -- copy ----------------------------------------------------------------------------------------------------

def test_copy_registry_to_registry_to_layout_and_back(src_reg: RegistryServer, auth_reg: RegistryServer,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mod = fake_module(300_000)
    art = build_artifact("wasme", mod, runtime_config=RC)
    digest = RegistryClient(f"{src_reg.host}/copy/src:1", plain_http=True).push(art)
    cfg = tmp_path / "docker" / "config.json"
    assert login(auth_reg, cfg).returncode == 0
    # registry -> registry (the destination needs the login; DST without a tag takes SRC's)
    rc, out, err = cli(["oras", "copy", f"{src_reg.host}/copy/src:1", f"{auth_reg.host}/copy/dst", "--plain-http",
                        "--docker-config", str(cfg)], capsys)
    assert rc == 0, err
    assert out == f"{auth_reg.host}/copy/dst:1@{digest}\n"
    assert "1 manifest(s), 2 blob(s)" in err and "every digest checked" in err
    back = RegistryClient(f"{auth_reg.host}/copy/dst:1", plain_http=True, docker_config=str(cfg)).get_manifest()
    assert back.raw == art.manifest_bytes and back.digest == digest
    # again: every blob is already there
    rc, out, err = cli(["oras", "copy", f"{src_reg.host}/copy/src:1", f"{auth_reg.host}/copy/dst:2", "--plain-http",
                        "--docker-config", str(cfg)], capsys)
    assert rc == 0 and "0 blob(s) (0 bytes) copied, 2 already present" in err
    # registry -> OCI layout -> another registry
    layout = tmp_path / "layout"
    rc, out, err = cli(["oras", "copy", f"{auth_reg.host}/copy/dst:1", f"{layout}:v1", "--to-oci-layout",
                        "--plain-http", "--docker-config", str(cfg)], capsys)
    assert rc == 0 and out == f"{layout}:v1@{digest}\n"
    assert read_layout(layout, "v1").blobs == art.blobs
    rc, out, err = cli(["oras", "copy", f"{layout}:v1", f"{src_reg.host}/copy/fromlayout:7", "--from-oci-layout",
                        "--plain-http"], capsys)
    assert rc == 0 and out == f"{src_reg.host}/copy/fromlayout:7@{digest}\n"
    assert RegistryClient(f"{src_reg.host}/copy/fromlayout:7", plain_http=True).pull().module == mod


def test_copy_an_image_index_with_its_manifests(src_reg: RegistryServer, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    layout = LayoutStore(tmp_path / "idx")
    children = []
    for arch in ("arm64", "amd64"):
        a = build_artifact("compat", fake_module(5_000), runtime_config=RC)
        for d, data in a.blobs.items():
            layout.write_blob(d, data)
        layout.put_manifest(a.manifest_bytes, OCI_MANIFEST, a.digest)
        children.append({"mediaType": OCI_MANIFEST, "digest": a.digest, "size": len(a.manifest_bytes),
                         "platform": {"os": "linux", "architecture": arch}})
    index_raw = serialize_manifest({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
    index_digest = layout.put_manifest(index_raw, OCI_INDEX, "multi")
    rc, out, err = cli(["oras", "copy", f"{layout.root}:multi", f"{src_reg.host}/copy/index:1", "--from-oci-layout",
                        "--plain-http"], capsys)
    assert rc == 0, err
    assert out == f"{src_reg.host}/copy/index:1@{index_digest}\n" and "3 manifest(s), 4 blob(s)" in err
    client = RegistryClient(f"{src_reg.host}/copy/index:1", plain_http=True)
    assert client.get_manifest().raw == index_raw
    assert resolve_digest(f"{src_reg.host}/copy/index:1", plain_http=True) == children[1]["digest"]
    # and out to a layout again, which skopeo reads
    out_layout = tmp_path / "again"
    rc, out, err = cli(["oras", "copy", f"{src_reg.host}/copy/index:1", f"{out_layout}:m", "--to-oci-layout",
                        "--plain-http"], capsys)
    assert rc == 0, err
    sk = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{out_layout}:m"], capture_output=True, timeout=60,
                        check=False)
    assert sk.returncode == 0 and sk.stdout == index_raw


def test_copy_refuses_a_corrupt_source_and_tags_nothing(src_reg: RegistryServer, auth_reg: RegistryServer,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    art = build_artifact("asm", fake_module(40_000), runtime_config=RC)
    layout = tmp_path / "bad"
    write_layout(layout, art, "v1")
    layer = art.manifest["layers"][0]["digest"].split(":")[1]
    blob = layout / "blobs" / "sha256" / layer
    blob.write_bytes(blob.read_bytes()[:-1] + b"X")
    rc, out, err = cli(["oras", "copy", f"{layout}:v1", f"{src_reg.host}/copy/corrupt:1", "--from-oci-layout",
                        "--plain-http"], capsys)
    assert rc == 1 and out == "" and err.count("\n") == 1 and f"blob sha256:{layer} has digest" in err
    assert src_reg.manifest_status("copy/corrupt", "1") == 404


# -- tags ----------------------------------------------------------------------------------------------------

def test_tags_one_per_line_and_pages(src_reg: RegistryServer, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    art = build_artifact("asm", fake_module(1_000), runtime_config=RC)
    client = RegistryClient(f"{src_reg.host}/tags/repo:x", plain_http=True)
    names = ["v1", "v2", "v10", "latest", "a-b.c_d"]
    for t in names:
        RegistryClient(f"{src_reg.host}/tags/repo:{t}", plain_http=True).push(art)
    rc, out, err = cli(["oras", "tags", f"{src_reg.host}/tags/repo", "--plain-http"], capsys)
    assert rc == 0 and sorted(out.splitlines()) == sorted(names) and out.endswith("\n")
    assert client.tags(page_size=2) == out.splitlines()  # following the Link header, page by page
    rc, out, err = cli(["oras", "tags", f"{src_reg.host}/tags/repo:v1", "--plain-http"], capsys)
    assert rc == 2 and "give the repository only" in err
    rc, out, err = cli(["oras", "tags", f"{src_reg.host}/tags/none", "--plain-http"], capsys)
    assert rc == 1 and "not found (404)" in err and err.count("\n") == 1
    layout = tmp_path / "layout"
    write_layout(layout, art, "one")
    write_layout(layout, art, "two")
    rc, out, err = cli(["oras", "tags", str(layout), "--oci-layout"], capsys)
    assert rc == 0 and out == "one\ntwo\n"
