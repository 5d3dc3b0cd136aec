"""meshfilter oras against a real registry: Debian's docker-registry (open, htpasswd, TLS), cross-checked
with skopeo. No mocks: the only helper in between is meshfilter.testing.registry.FaultProxy."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from meshfilter.cli import main
from meshfilter.errors import AuthError, DigestMismatchError, NotFoundError, NotWasmArtifactError, RegistryError
from meshfilter.oras.client import PushStats, RegistryClient, resolve_digest
from meshfilter.oras.formats import (
    ANNOTATION_ABI,
    ANNOTATION_TITLE,
    ANNOTATION_TYPE,
    ANNOTATION_VARIANT,
    DOCKER_CONFIG,
    DOCKER_LAYER_TAR_GZIP,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_LAYER_TAR_GZIP,
    OCI_MANIFEST,
    WASM_CONFIG,
    WASM_LAYER,
    Artifact,
    build_artifact,
    descriptor,
    serialize_manifest,
)
from meshfilter.oras.layout import read_layout
from meshfilter.oras.progress import TtyProgress
from meshfilter.oras.runtime_config import DEFAULT_ABI_VERSIONS, build_runtime_config
from meshfilter.testing.registry import Fault, FaultProxy, RegistryServer
from meshfilter.util.ports import free_port

pytestmark = pytest.mark.registry
ROOT = "propaganda_filter_root"
FORMATS = ["asm", "wasme", "compat", "docker"]


def wasm_module(size: int, seed: int = 1) -> bytes:
    """A byte string that starts like a Wasm module; random tail so each size/seed has its own digest."""
    rnd = bytes((i * 7919 + seed * 104729) % 251 for i in range(min(size, 4096)))
    body = (rnd * (size // len(rnd) + 1))[: max(0, size - 8)]
    return b"\0asm\x01\0\0\0" + os.urandom(16) + body[16:]


@pytest.fixture(scope="module")
def reg_open(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("reg-open"), "open") as reg:
        yield reg


@pytest.fixture(scope="module")
def reg_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("reg-auth"), "htpasswd") as reg:
        yield reg


@pytest.fixture(scope="module")
def reg_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("reg-token"), "token") as reg:
        yield reg


@pytest.fixture(scope="module")
def reg_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("reg-tls"), "tls") as reg:
        yield reg


@pytest.fixture
def module_file(tmp_path: Path) -> Path:
    p = tmp_path / "propagate_header.wasm"
    p.write_bytes(wasm_module(50_000))
    return p


def cli(args: list[str], capsys: pytest.CaptureFixture[str], stdin: str | None = None,
        monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def skopeo_raw(ref: str, *extra: str) -> bytes:
    proc = subprocess.run(["skopeo", "inspect", "--raw", *extra, f"docker://{ref}"], capture_output=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def manifest_status(reg: RegistryServer, repo: str, tag: str) -> int:
    return requests.get(f"{reg.url}/v2/{repo}/manifests/{tag}", timeout=10,
                        headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"}).status_code


# -- round trip, every format, and skopeo's view of it ------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_push_pull_round_trip_and_skopeo_sees_exact_media_types(
        fmt: str, reg_open: RegistryServer, module_file: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"{reg_open.host}/asm_wasm/propagate_header:{fmt}"
    rc, out, err = cli(["oras", "push", ref, str(module_file), "--format", fmt, "--root-id", ROOT,
                        "--plain-http"], capsys)
    assert rc == 0, err
    line = out.strip()
    assert line.startswith(f"{ref}@sha256:") and len(line.split("@")[1]) == 71
    digest = line.split("@")[1]
    assert resolve_digest(ref, plain_http=True) == digest

    raw = skopeo_raw(ref, "--tls-verify=false")
    m = json.loads(raw)
    import hashlib
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    if fmt == "asm":
        assert m["mediaType"] == OCI_MANIFEST
        assert m["config"]["mediaType"] == WASM_CONFIG
        assert [x["mediaType"] for x in m["layers"]] == [WASM_LAYER]
        assert m["layers"][0]["annotations"] == {ANNOTATION_TITLE: "propagate_header.wasm"}
        assert "annotations" not in m
    elif fmt == "wasme":
        assert m["mediaType"] == OCI_MANIFEST
        assert m["config"]["mediaType"] == WASM_CONFIG
        assert [x["mediaType"] for x in m["layers"]] == [WASM_CONFIG, WASM_LAYER]
        assert m["layers"][0] == m["config"]
        assert m["annotations"] == {ANNOTATION_ABI: ",".join(DEFAULT_ABI_VERSIONS), ANNOTATION_TYPE: "envoy_proxy"}
    elif fmt == "compat":
        assert m["mediaType"] == OCI_MANIFEST
        assert m["config"]["mediaType"] == OCI_CONFIG
        assert [x["mediaType"] for x in m["layers"]] == [OCI_LAYER_TAR_GZIP]
        assert m["annotations"] == {ANNOTATION_VARIANT: "compat"}
    else:
        assert m["mediaType"] == DOCKER_MANIFEST
        assert m["config"]["mediaType"] == DOCKER_CONFIG
        assert [x["mediaType"] for x in m["layers"]] == [DOCKER_LAYER_TAR_GZIP]

    # an independent client can copy it into an OCI layout, and we read that layout back
    layout = tmp_path / "skopeo-layout"
    proc = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:{fmt}"],
                          capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (layout / "index.json").exists()

    out_file = tmp_path / "pulled.wasm"
    rc, out, err = cli(["oras", "pull", ref, "-o", str(out_file), "--plain-http"], capsys)
    assert rc == 0, err
    assert out_file.read_bytes() == module_file.read_bytes()
    assert f"({fmt}," in err

    rc, out, err = cli(["oras", "inspect", ref, "-o", "json", "--plain-http"], capsys)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["format"] == fmt and doc["digest"] == digest
    if fmt != "docker":
        assert doc["rootIds"] == [ROOT] and doc["abiVersions"] == list(DEFAULT_ABI_VERSIONS)


def test_skopeo_layout_pushed_back_by_us(reg_open: RegistryServer, module_file: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"{reg_open.host}/asm_wasm/skopeo_src:1"
    assert cli(["oras", "push", ref, str(module_file), "--format", "wasme", "--root-id", ROOT, "--plain-http"],
               capsys)[0] == 0
    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:v1"],
                   check=True, capture_output=True, timeout=120)
    art = read_layout(layout, "v1")
    assert art.format == "wasme"
    ref2 = f"{reg_open.host}/asm_wasm/skopeo_back:1"
    rc, out, err = cli(["oras", "push", ref2, "--from-oci-layout", str(layout), "--layout-tag", "v1",
                        "--plain-http"], capsys)
    assert rc == 0, err
    pulled = tmp_path / "m.wasm"
    assert cli(["oras", "pull", ref2, "-o", str(pulled), "--plain-http"], capsys)[0] == 0
    assert pulled.read_bytes() == module_file.read_bytes()


def test_oci_layout_offline_then_push_gives_same_digest(reg_open: RegistryServer, module_file: Path,
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"{reg_open.host}/asm_wasm/layout:0.0.1"
    layout = tmp_path / "oci"
    rc, out, _ = cli(["oras", "push", ref, str(module_file), "--root-id", ROOT, "--oci-layout", str(layout)],
                     capsys)
    assert rc == 0
    offline_digest = out.strip().split("@")[1]
    assert manifest_status(reg_open, "asm_wasm/layout", "0.0.1") == 404  # nothing went to the registry
    rc, out, err = cli(["oras", "push", ref, "--from-oci-layout", str(layout), "--plain-http"], capsys)
    assert rc == 0, err
    assert out.strip() == f"{ref}@{offline_digest}"
    # skopeo reads our layout too
    proc = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{layout}:0.0.1"], capture_output=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["config"]["mediaType"] == WASM_CONFIG


def test_existing_blobs_are_skipped(reg_open: RegistryServer, capsys: pytest.CaptureFixture[str]) -> None:
    mod = wasm_module(200_000, seed=5)
    art = build_artifact("asm", mod, runtime_config=build_runtime_config([ROOT]).to_bytes())
    first, second = PushStats(), PushStats()
    RegistryClient(f"{reg_open.host}/skip/a:1", plain_http=True).push(art, stats=first)
    RegistryClient(f"{reg_open.host}/skip/a:2", plain_http=True).push(art, stats=second)
    assert (first.uploaded, first.skipped) == (2, 0)
    assert (second.uploaded, second.skipped) == (0, 2)


@pytest.mark.slow
def test_20mb_module_round_trip_with_progress_bar(reg_open: RegistryServer, tmp_path: Path) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    mod = wasm_module(20 * 1024 * 1024, seed=20)
    art = build_artifact("wasme", mod, runtime_config=build_runtime_config([ROOT]).to_bytes())
    bar = Tty()
    client = RegistryClient(f"{reg_open.host}/big/module:20mb", plain_http=True, progress=TtyProgress(bar))
    digest = client.push(art)
    assert "100%" in bar.getvalue() and "21.0/21.0 MB" in bar.getvalue()
    pulled = RegistryClient(f"{reg_open.host}/big/module@{digest}", plain_http=True).pull()
    assert pulled.module == mod


# -- TLS and plain HTTP only when asked ------------------------------------------------------------------

def test_tls_registry_with_ca_file(reg_tls: RegistryServer, module_file: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"{reg_tls.host}/tls/ph:1"
    rc, out, err = cli(["oras", "push", ref, str(module_file), "--root-id", ROOT, "--format", "compat",
                        "--ca-file", str(reg_tls.ca_file)], capsys)
    assert rc == 0, err
    rc, out, err = cli(["oras", "pull", ref, "-o", str(tmp_path / "x.wasm"), "--ca-file", str(reg_tls.ca_file)],
                       capsys)
    assert rc == 0, err
    assert (tmp_path / "x.wasm").read_bytes() == module_file.read_bytes()
    # skopeo agrees, trusting the same CA
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "ca.crt").write_bytes(Path(str(reg_tls.ca_file)).read_bytes())
    m = json.loads(skopeo_raw(ref, "--cert-dir", str(certs)))
    assert m["annotations"] == {ANNOTATION_VARIANT: "compat"}


def test_tls_untrusted_without_ca_file_then_insecure(reg_tls: RegistryServer, module_file: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"{reg_tls.host}/tls/untrusted:1"
    rc, out, err = cli(["oras", "push", ref, str(module_file), "--root-id", ROOT], capsys)
    assert rc == 1 and out == ""
    assert err.count("\n") == 1 and "certificate not trusted" in err and "--ca-file" in err
    rc, out, err = cli(["oras", "push", ref, str(module_file), "--root-id", ROOT, "--insecure"], capsys)
    assert rc == 0, err


def test_plain_http_only_when_asked(reg_open: RegistryServer, reg_tls: RegistryServer, module_file: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = cli(["oras", "push", f"{reg_open.host}/plain/x:1", str(module_file), "--root-id", ROOT], capsys)
    assert rc == 1 and err.count("\n") == 1 and "--plain-http" in err
    assert manifest_status(reg_open, "plain/x", "1") == 404
    rc, out, err = cli(["oras", "push", f"{reg_tls.host}/plain/x:1", str(module_file), "--root-id", ROOT,
                        "--plain-http"], capsys)
    assert rc == 1 and "HTTPS" in err and err.count("\n") == 1


# -- credentials -----------------------------------------------------------------------------------------

def test_auth_required_wrong_and_right_password_never_leaks(reg_auth: RegistryServer, module_file: Path,
                                                            tmp_path: Path) -> None:
    ref = f"{reg_auth.host}/secret/ph:1"
    assert reg_auth.password
    wrong = "Wr0ng-" + reg_auth.password[::-1]
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "empty-docker-config")}
    base = [sys.executable, "-m", "meshfilter", "oras", "push", ref, str(module_file), "--root-id", ROOT,
            "--plain-http"]

    none = subprocess.run(base, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert none.returncode == 1
    assert "401" in none.stderr and "--password-stdin" in none.stderr and none.stderr.count("\n") == 1

    bad = subprocess.run([*base, "--username", reg_auth.username or "", "--password-stdin"], input=wrong + "\n",
                         capture_output=True, text=True, env=env, timeout=60, check=False)
    assert bad.returncode == 1 and "credentials rejected (401)" in bad.stderr
    assert wrong not in bad.stdout + bad.stderr
    assert manifest_status_auth(reg_auth, "secret/ph", "1") == 404

    good = subprocess.run([*base, "--username", reg_auth.username or "", "--password-stdin"],
                          input=reg_auth.password + "\n", capture_output=True, text=True, env=env, timeout=60,
                          check=False)
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith(f"{ref}@sha256:")
    for text in (none.stdout, none.stderr, good.stdout, good.stderr):
        assert reg_auth.password not in text
        assert base64.b64encode(f"{reg_auth.username}:{reg_auth.password}".encode()).decode() not in text

    # raised errors carry no secret either
    with pytest.raises(AuthError) as exc:
        RegistryClient(ref, plain_http=True, username=reg_auth.username, password=wrong).get_manifest()
    assert wrong not in str(exc.value) and wrong not in repr(exc.value.args)


def test_bearer_token_registry_round_trip(reg_token: RegistryServer, module_file: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert reg_token.issuer is not None and reg_token.password
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    ref = f"{reg_token.host}/bearer/ph:1"
    rc, out, err = cli(["oras", "push", ref, str(module_file), "--format", "wasme", "--root-id", ROOT,
                        "--plain-http", "--username", "meshfilter", "--password-stdin"], capsys,
                       stdin=reg_token.password + "\n", monkeypatch=monkeypatch)
    assert rc == 0, err
    assert reg_token.password not in out + err
    # the registry asked for scoped tokens and we fetched them from its realm
    granted = [(a["type"], a["name"], set(a["actions"]))
               for claims in reg_token.issuer.issued for a in claims["access"]]
    assert ("repository", "bearer/ph", {"pull", "push"}) in granted  # the registry orders actions at random
    rc, out, err = cli(["oras", "pull", ref, "-o", str(tmp_path / "b.wasm"), "--plain-http", "--username",
                        "meshfilter", "--password-stdin"], capsys, stdin=reg_token.password, monkeypatch=monkeypatch)
    assert rc == 0, err
    assert (tmp_path / "b.wasm").read_bytes() == module_file.read_bytes()
    rc, out, err = cli(["oras", "pull", ref, "-o", str(tmp_path / "c.wasm"), "--plain-http", "--username",
                        "meshfilter", "--password-stdin"], capsys, stdin="wrong-pass\n", monkeypatch=monkeypatch)
    assert rc == 1 and "credentials rejected (401)" in err and "wrong-pass" not in out + err
    rc, out, err = cli(["oras", "pull", ref, "-o", str(tmp_path / "c.wasm"), "--plain-http"], capsys)
    assert rc == 1 and "authentication required (401)" in err
    assert not (tmp_path / "c.wasm").exists()


def manifest_status_auth(reg: RegistryServer, repo: str, tag: str) -> int:
    return requests.get(f"{reg.url}/v2/{repo}/manifests/{tag}", timeout=10, auth=(reg.username or "",
                        reg.password or ""), headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"}).status_code


def test_docker_config_credentials_for_that_host(reg_auth: RegistryServer, module_file: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg_dir = tmp_path / "docker"
    cfg_dir.mkdir()
    token = base64.b64encode(f"{reg_auth.username}:{reg_auth.password}".encode()).decode()
    other = base64.b64encode(b"someone:else").decode()
    (cfg_dir / "config.json").write_text(json.dumps({"auths": {
        "other.example.com": {"auth": other}, f"http://{reg_auth.host}": {"auth": token}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg_dir))
    ref = f"{reg_auth.host}/fromcfg/ph:1"
    rc, out, err = cli(["oras", "push", ref, str(module_file), "--root-id", ROOT, "--plain-http"], capsys)
    assert rc == 0, err
    assert resolve_digest(ref, plain_http=True) == out.strip().split("@")[1]
    assert cli(["oras", "inspect", ref, "--plain-http"], capsys)[0] == 0
    rc, out, err = cli(["oras", "inspect", ref, "--plain-http", "--username", "meshfilter", "--password-stdin"],
                       capsys, stdin="not-it\n", monkeypatch=monkeypatch)
    assert rc == 1 and "credentials rejected" in err and "--username/--password-stdin" in err
    assert "not-it" not in out + err


# -- one-line errors ---------------------------------------------------------------------------------------

def test_unreachable_registry_fails_fast_in_one_line(module_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    t0 = time.monotonic()
    rc, out, err = cli(["oras", "push", f"127.0.0.1:{port}/x/y:1", str(module_file), "--root-id", ROOT,
                        "--plain-http"], capsys)
    assert time.monotonic() - t0 < 15
    assert rc == 1 and err.count("\n") == 1 and "registry unreachable" in err and f"127.0.0.1:{port}" in err


def test_pull_404_is_not_found(reg_open: RegistryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = cli(["oras", "pull", f"{reg_open.host}/nothing/here:1", "-o", str(tmp_path / "x.wasm"),
                        "--plain-http"], capsys)
    assert rc == 1 and "not found (404)" in err and err.count("\n") == 1
    assert not (tmp_path / "x.wasm").exists()
    with pytest.raises(NotFoundError):
        resolve_digest(f"{reg_open.host}/nothing/here:1", plain_http=True)


def test_not_a_wasm_artifact(reg_open: RegistryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layer, config = b"just some text", b"{}"
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": descriptor("application/vnd.oci.image.config.v1+json", config),
                "layers": [descriptor("text/plain", layer)]}
    from meshfilter.oras.formats import sha256_digest
    art = Artifact("asm", manifest, serialize_manifest(manifest), {sha256_digest(layer): layer,
                                                                   sha256_digest(config): config})
    ref = f"{reg_open.host}/notwasm/x:1"
    RegistryClient(ref, plain_http=True).push(art)
    with pytest.raises(NotWasmArtifactError):
        RegistryClient(ref, plain_http=True).pull()
    rc, out, err = cli(["oras", "pull", ref, "-o", str(tmp_path / "x.wasm"), "--plain-http"], capsys)
    assert rc == 1 and "not a Wasm artifact" in err and "text/plain" in err and err.count("\n") == 1


def test_digest_mismatch_on_corrupted_blob(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with RegistryServer(tmp_path / "reg", "open") as reg:
        mod = wasm_module(30_000, seed=9)
        art = build_artifact("asm", mod, runtime_config=build_runtime_config([ROOT]).to_bytes())
        ref = f"{reg.host}/corrupt/x:1"
        RegistryClient(ref, plain_http=True).push(art)
        layer_digest = art.manifest["layers"][0]["digest"]
        hexd = layer_digest.split(":")[1]
        data = reg.workdir / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd / "data"
        raw = bytearray(data.read_bytes())
        raw[100] ^= 0xFF
        data.write_bytes(bytes(raw))
        with pytest.raises(DigestMismatchError):
            RegistryClient(ref, plain_http=True, attempts=1).pull()
        out_file = tmp_path / "x.wasm"
        rc, out, err = cli(["oras", "pull", ref, "-o", str(out_file), "--plain-http"], capsys)
        assert rc == 1 and "digest" in err and err.count("\n") == 1
        assert not out_file.exists()


# -- interrupted pushes ------------------------------------------------------------------------------------

def test_interrupted_push_leaves_no_tag(reg_open: RegistryServer, capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    proxy = FaultProxy(reg_open.port, Fault(r"^PUT .*/blobs/uploads/", cut_request_after=512 * 1024, times=None))
    try:
        mod_file = tmp_path / "big.wasm"
        mod_file.write_bytes(wasm_module(2 * 1024 * 1024, seed=11))
        rc, out, err = cli(["oras", "push", f"127.0.0.1:{proxy.port}/cut/ph:1", str(mod_file), "--root-id", ROOT,
                            "--plain-http"], capsys)
        assert rc == 1 and out == "" and err.count("\n") == 1
        assert "connection lost" in err
        assert proxy.hits() >= 2  # retried
        assert manifest_status(reg_open, "cut/ph", "1") == 404
    finally:
        proxy.close()


def test_connection_reset_once_is_retried(reg_open: RegistryServer, tmp_path: Path) -> None:
    proxy = FaultProxy(reg_open.port, Fault(r"^PUT .*/blobs/uploads/", cut_request_after=512 * 1024))
    try:
        mod = wasm_module(2 * 1024 * 1024, seed=12)
        art = build_artifact("asm", mod, runtime_config=build_runtime_config([ROOT]).to_bytes())
        digest = RegistryClient(f"127.0.0.1:{proxy.port}/cut/retry:1", plain_http=True).push(art)
        assert proxy.hits() == 1
        assert RegistryClient(f"{reg_open.host}/cut/retry:1", plain_http=True).pull().module == mod
        assert resolve_digest(f"{reg_open.host}/cut/retry:1", plain_http=True) == digest
    finally:
        proxy.close()


def test_registry_stopped_mid_session_is_one_line(tmp_path: Path) -> None:
    reg = RegistryServer(tmp_path / "reg", "open").start()
    client = RegistryClient(f"{reg.host}/gone/x:1", plain_http=True, attempts=2, backoff=0.05)
    client.ping()
    reg.stop()
    art = build_artifact("asm", wasm_module(1000), runtime_config=build_runtime_config([ROOT]).to_bytes())
    with pytest.raises(RegistryError) as exc:
        client.push(art)
    assert "unreachable" in exc.value.line()




def test_seed_flow_build_push_inspect(reg_open: RegistryServer, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's 'done when': wasm build propagate-header -> oras push -> inspect shows the seed's types."""
    wasm = tmp_path / "propagate_header.wasm"
    assert main(["wasm", "build", "propagate-header", "-o", str(wasm)]) == 0
    capsys.readouterr()
    ref = f"{reg_open.host}/asm_wasm/propagate_header:0.0.1"
    rc, out, err = cli(["oras", "push", ref, str(wasm), "--root-id", ROOT, "--plain-http"], capsys)
    assert rc == 0, err
    rc, out, err = cli(["oras", "inspect", ref, "--plain-http"], capsys)
    assert rc == 0, err
    assert "Format:       asm" in out and f"Root ids:     {ROOT}" in out
    assert "Config:       application/vnd.module.wasm.config.v1+json" in out
    assert "Layer 0:      application/vnd.module.wasm.content.layer.v1+wasm" in out
    assert "org.opencontainers.image.title=propagate_header.wasm" in out
    # the seed's own runtime-config.json bytes give the same config blob as --root-id
    seed_rc = tmp_path / "runtime-config.json"
    assert main(["oras", "runtime-config", "--root-id", ROOT, "-o", str(seed_rc)]) == 0
    rc, out2, err = cli(["oras", "push", ref, str(wasm), "--runtime-config", str(seed_rc), "--plain-http"], capsys)
    assert rc == 0 and "0 blob(s) uploaded" in err and "2 already present" in err


def test_5xx_on_blob_upload_is_retried_then_reported(reg_open: RegistryServer,
                                                     capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    mod = wasm_module(100_000, seed=13)
    art = build_artifact("asm", mod, runtime_config=build_runtime_config([ROOT]).to_bytes())
    once = FaultProxy(reg_open.port, Fault(r"^PUT .*/blobs/uploads/", status=503))
    try:
        RegistryClient(f"127.0.0.1:{once.port}/five/ok:1", plain_http=True).push(art)
        assert once.hits() == 1
        assert RegistryClient(f"{reg_open.host}/five/ok:1", plain_http=True).pull().module == mod
    finally:
        once.close()
    always = FaultProxy(reg_open.port, Fault(r"^PUT .*/blobs/uploads/", status=503, times=None))
    try:
        f = tmp_path / "m.wasm"
        f.write_bytes(wasm_module(100_000, seed=14))
        rc, out, err = cli(["oras", "push", f"127.0.0.1:{always.port}/five/bad:1", str(f), "--root-id", ROOT,
                            "--plain-http"], capsys)
        assert rc == 1 and out == "" and err.count("\n") == 1
        assert "answered HTTP 503 4 times" in err
        assert always.hits() == 4
        assert manifest_status(reg_open, "five/bad", "1") == 404
    finally:
        always.close()


def test_registry_server_readiness_failure_names_address_and_log(tmp_path: Path) -> None:
    fake = tmp_path / "fake-registry"
    fake.write_text("#!/bin/sh\necho 'configuration error: nope' >&2\nexit 3\n")
    fake.chmod(0o755)
    server = RegistryServer(tmp_path / "w", "open", binary=str(fake), timeout=5)
    with pytest.raises(RegistryError) as exc:
        server.start()
    line = exc.value.line()
    assert "exited with 3" in line and "configuration error: nope" in line and "127.0.0.1:" in line
    assert "hint:" in line and server.proc is None


def test_registry_server_stop_ends_the_pid(tmp_path: Path) -> None:
    server = RegistryServer(tmp_path, "open").start()
    pid = server.pid
    assert pid is not None and Path(f"/proc/{pid}").exists()
    server.stop()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
