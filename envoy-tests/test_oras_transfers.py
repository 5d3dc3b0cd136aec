"""Streaming transfers and faults against the real registry (Debian's docker-registry).

Between client and registry there is at most a :class:`meshfilter.testing.registry.FaultProxy`, which
forwards everything byte for byte except the one fault a test asks for: a connection cut after N bytes of a
request body or of a response, a 5xx instead of forwarding, or a slow relay (to interrupt a transfer).
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshfilter.cli import main
from meshfilter.errors import NotWasmArtifactError
from meshfilter.oras.client import PushStats, RegistryClient
from meshfilter.oras.formats import (
    OCI_MANIFEST,
    WASM_CONFIG,
    WASM_LAYER,
    Artifact,
    build_artifact,
    descriptor,
    serialize_manifest,
)
from meshfilter.oras.runtime_config import build_runtime_config
from meshfilter.testing.registry import Fault, FaultProxy, RegistryServer, fake_module
from meshfilter.util.proc import spawn

pytestmark = pytest.mark.registry
ROOT = "propaganda_filter_root"
RC = build_runtime_config([ROOT]).to_bytes()
MiB = 1 << 20
CMD = [sys.executable, "-m", "meshfilter"]


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("reg-transfers"), "open") as server:
        yield server


def artifact(size: int) -> tuple[bytes, object]:
    mod = fake_module(size)
    return mod, build_artifact("asm", mod, runtime_config=RC)


def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "DOCKER_CONFIG": str(tmp_path / "no-docker-config"), "PYTHONUNBUFFERED": "1"}


# -- uploads: from memory, chunked, resumed --------------------------------------------------------------

def test_push_streams_from_memory_without_temp_files(reg: RegistryServer, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def no_temp(*a: object, **k: object) -> None:
        raise AssertionError("a temporary file was made during the push")

    for name in ("mkstemp", "NamedTemporaryFile", "TemporaryFile", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, no_temp)
    mod, art = artifact(10 * MiB)  # above the chunk size: PATCH chunks
    stats = PushStats()
    client = RegistryClient(f"{reg.host}/mem/a:1", plain_http=True, chunk_size=4 * MiB)
    digest = client.push(art, stats=stats)  # type: ignore[arg-type]
    assert stats.chunks == 3 and stats.uploaded == 2
    monkeypatch.undo()
    pulled = RegistryClient(f"{reg.host}/mem/a@{digest}", plain_http=True).pull()
    assert pulled.module == mod


def test_dropped_chunk_resumes_where_the_registry_stands(reg: RegistryServer) -> None:
    """The second PATCH's connection is cut after its headers: the registry still holds the first chunk, says so
    (Range: 0-<last>), and the upload continues from there without sending the first chunk again."""
    mod, art = artifact(5 * MiB)
    with FaultProxy(reg.port, Fault(r"^PATCH /v2/resume/", cut_request_after=0, skip=1)) as proxy:
        stats = PushStats()
        RegistryClient(f"{proxy.host}/resume/a:1", plain_http=True, chunk_size=MiB).push(art, stats=stats)  # type: ignore[arg-type]
        assert proxy.hits() == 1
        assert (stats.resumed, stats.restarted) == (1, 0)
        assert proxy.body_bytes["PATCH"] == len(mod)  # every byte sent once
    assert RegistryClient(f"{reg.host}/resume/a:1", plain_http=True).pull().module == mod


def test_chunk_cut_halfway_restarts_the_upload(reg: RegistryServer) -> None:
    """docker-registry 2.8 drops an upload whose chunk was cut halfway (its state no longer matches): the
    client starts the blob again, and the result is intact."""
    mod, art = artifact(3 * MiB)
    with FaultProxy(reg.port, Fault(r"^PATCH /v2/restart/", cut_request_after=300_000, skip=1)) as proxy:
        stats = PushStats()
        RegistryClient(f"{proxy.host}/restart/a:1", plain_http=True, chunk_size=MiB).push(art, stats=stats)  # type: ignore[arg-type]
        assert proxy.hits() == 1 and stats.restarted == 1
        assert proxy.body_bytes["PATCH"] == len(mod) + MiB + 300_000  # what was lost went again
    assert RegistryClient(f"{reg.host}/restart/a:1", plain_http=True).pull().module == mod


def test_every_chunk_cut_is_one_line_and_no_tag(reg: RegistryServer, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    module = tmp_path / "big.wasm"
    module.write_bytes(fake_module(17 * MiB))  # > 16 MiB: chunked
    with FaultProxy(reg.port, Fault(r"^PATCH ", cut_request_after=MiB, times=None)) as proxy:
        rc = main(["oras", "push", f"{proxy.host}/cutall/ph:1", str(module), "--root-id", ROOT, "--plain-http"])
        out, err = capsys.readouterr()
        assert rc == 1 and out == "" and err.count("\n") == 1 and "Traceback" not in err
        assert "connection lost during upload of blob" in err and "after 4 attempts" in err
        assert proxy.hits() >= 4
    assert reg.manifest_status("cutall/ph", "1") == 404


# -- downloads: resumed with Range, never a partial file ----------------------------------------------------

def test_pull_cut_mid_blob_resumes_with_range(reg: RegistryServer) -> None:
    mod, art = artifact(3 * MiB)
    RegistryClient(f"{reg.host}/pullcut/a:1", plain_http=True).push(art)  # type: ignore[arg-type]
    with FaultProxy(reg.port, Fault(r"^GET /v2/pullcut/a/blobs/", cut_response_after=2 * MiB)) as proxy:
        assert RegistryClient(f"{proxy.host}/pullcut/a:1", plain_http=True).pull().module == mod
        assert proxy.hits() == 1
        wanted = "GET /v2/pullcut/a/blobs/" + art.manifest["layers"][0]["digest"]  # type: ignore[attr-defined]
        layer = [h for h in proxy.heads if h.startswith(wanted)]
    assert len(layer) == 2 and "range: bytes=" not in layer[0].lower()
    got = int(layer[1].lower().split("range: bytes=")[1].split("-")[0])  # the rest asked for as a range
    assert MiB < got <= 2 * MiB


def test_pull_to_streams_the_layer_into_the_file_never_into_memory(reg: RegistryServer, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    mod, art = artifact(3 * MiB)
    RegistryClient(f"{reg.host}/pullto/a:1", plain_http=True).push(art)  # type: ignore[arg-type]

    def in_memory(*a: object, **k: object) -> bytes:
        raise AssertionError("the layer was fetched into memory")

    monkeypatch.setattr(RegistryClient, "fetch_blob", in_memory)
    with FaultProxy(reg.port, Fault(r"^GET /v2/pullto/a/blobs/", cut_response_after=2 * MiB)) as proxy:
        got = RegistryClient(f"{proxy.host}/pullto/a:1", plain_http=True).pull_to(tmp_path / "m.wasm")
        assert proxy.hits() == 1  # cut once, resumed with Range into the same file
    assert (tmp_path / "m.wasm").read_bytes() == mod and got.size == len(mod) and got.detected.format == "asm"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.wasm"]  # no temp file left beside it


def test_pull_to_unpacks_a_tar_layer(reg: RegistryServer, tmp_path: Path) -> None:
    mod = fake_module(200_000)
    RegistryClient(f"{reg.host}/pullto/compat:1", plain_http=True).push(
        build_artifact("compat", mod, runtime_config=RC))
    got = RegistryClient(f"{reg.host}/pullto/compat:1", plain_http=True).pull_to(tmp_path / "m.wasm")
    assert (tmp_path / "m.wasm").read_bytes() == mod and got.size == len(mod) and got.detected.packed


def test_pull_to_refuses_a_raw_layer_without_the_magic_and_leaves_nothing(reg: RegistryServer,
                                                                          tmp_path: Path) -> None:
    layer = b"not a module" * 1000
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(WASM_CONFIG, RC),
                "layers": [descriptor(WASM_LAYER, layer)]}
    art = Artifact("asm", manifest, serialize_manifest(manifest),
                   {manifest["layers"][0]["digest"]: layer, manifest["config"]["digest"]: RC})
    RegistryClient(f"{reg.host}/pullto/nomagic:1", plain_http=True).push(art)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(NotWasmArtifactError, match="no \\\\0asm magic"):
        RegistryClient(f"{reg.host}/pullto/nomagic:1", plain_http=True).pull_to(out / "m.wasm")
    assert list(out.iterdir()) == []


def test_pull_to_stdout_writes_the_module_and_the_summary_to_stderr(reg: RegistryServer, tmp_path: Path) -> None:
    mod, art = artifact(300_000)
    RegistryClient(f"{reg.host}/pullto/stdout:1", plain_http=True).push(art)  # type: ignore[arg-type]
    proc = subprocess.run([*CMD, "oras", "pull", f"{reg.host}/pullto/stdout:1", "-o", "-", "--plain-http"],
                          capture_output=True, env=env(tmp_path), timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == mod
    assert proc.stderr.decode().endswith(f"(asm, {len(mod)} bytes) -> -\n")


def test_pull_cut_every_time_is_one_line_and_no_file(reg: RegistryServer, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    mod, art = artifact(2 * MiB)
    RegistryClient(f"{reg.host}/pullcutall/a:1", plain_http=True).push(art)  # type: ignore[arg-type]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with FaultProxy(reg.port, Fault(r"^GET /v2/pullcutall/a/blobs/", cut_response_after=256 * 1024,
                                    times=None)) as proxy:
        rc = main(["oras", "pull", f"{proxy.host}/pullcutall/a:1", "-o", str(out_dir / "m.wasm"), "--plain-http"])
        out, err = capsys.readouterr()
    assert rc == 1 and err.count("\n") == 1 and "connection lost during download of blob" in err
    assert list(out_dir.iterdir()) == []


def test_disk_full_at_the_output_is_one_line_and_no_partial_file(reg: RegistryServer, tmp_path: Path) -> None:
    """The output directory is a 1 MiB tmpfs in a private mount namespace (unshare -m): nothing to clean up
    outside the child, and the host's mounts are untouched."""
    mod, art = artifact(2 * MiB)
    RegistryClient(f"{reg.host}/full/a:1", plain_http=True).push(art)  # type: ignore[arg-type]
    full = tmp_path / "full"
    full.mkdir()
    unshare = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    script = (f"mount -t tmpfs -o size=1m tmpfs {full} && "
              f"{' '.join(CMD)} oras pull {reg.host}/full/a:1 -o {full}/m.wasm --plain-http; rc=$?; "
              f"echo LISTING; ls -A {full}; exit $rc")
    proc = subprocess.run([*unshare, "sh", "-c", script], capture_output=True, text=True, env=env(tmp_path),
                          timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "No space left on device" in proc.stderr, proc.stderr
    assert f"cannot write {full}/m.wasm" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout.split("LISTING")[1].strip() == ""  # neither m.wasm nor a temporary file


def _wait_for(pred: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _interrupt(cmd: list[str], fault: Fault, upstream: int, tmp_path: Path) -> tuple[int, bytes, bytes]:
    """Run ``cmd`` (``{proxy}`` in it: the proxy's host) through a FaultProxy slowed by ``fault``; SIGINT it
    mid-transfer."""
    with FaultProxy(upstream, fault) as proxy:
        proc = spawn([a.format(proxy=proxy.host) for a in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     env=env(tmp_path))
        try:
            _wait_for(lambda: proxy.hits() >= 1)
            time.sleep(0.5)  # mid-blob
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return proc.returncode, out, err


def test_interrupted_pull_leaves_no_file(reg: RegistryServer, tmp_path: Path) -> None:
    mod, art = artifact(3 * MiB)
    RegistryClient(f"{reg.host}/intpull/a:1", plain_http=True).push(art)  # type: ignore[arg-type]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc, _, err = _interrupt([*CMD, "oras", "pull", "{proxy}/intpull/a:1", "-o", str(out_dir / "m.wasm"),
                             "--plain-http"], Fault(r"^GET /v2/intpull/a/blobs/", delay=0.1, times=None),
                            reg.port, tmp_path)
    assert rc == 130 and b"Traceback" not in err
    assert list(out_dir.iterdir()) == []


def test_interrupted_push_leaves_no_tag(reg: RegistryServer, tmp_path: Path) -> None:
    module = tmp_path / "m.wasm"
    module.write_bytes(fake_module(3 * MiB))
    rc, out, err = _interrupt([*CMD, "oras", "push", "{proxy}/intpush/a:1", str(module), "--root-id", ROOT,
                               "--plain-http"], Fault(r"^(PUT|PATCH) /v2/intpush/.*/blobs/uploads/", delay=0.1,
                                                      times=None), reg.port, tmp_path)
    assert rc == 130 and out == b"" and b"Traceback" not in err
    assert reg.manifest_status("intpush/a", "1") == 404


# -- registry faults: 5xx on the manifest PUT; 401 then a token ---------------------------------------------

def test_5xx_on_manifest_put_leaves_no_tag(reg: RegistryServer, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    module = tmp_path / "m.wasm"
    module.write_bytes(fake_module(200_000))
    with FaultProxy(reg.port, Fault(r"^PUT /v2/five/a/manifests/", status=500, times=None)) as proxy:
        rc = main(["oras", "push", f"{proxy.host}/five/a:1", str(module), "--root-id", ROOT, "--plain-http"])
        out, err = capsys.readouterr()
        assert proxy.hits() == 4  # retried, then given up
    assert rc == 1 and out == "" and err.count("\n") == 1
    assert "manifest upload failed: registry answered HTTP 500 4 times" in err
    assert reg.manifest_status("five/a", "1") == 404
    # once only: the retry lands it
    with FaultProxy(reg.port, Fault(r"^PUT /v2/five/b/manifests/", status=503)) as proxy:
        rc = main(["oras", "push", f"{proxy.host}/five/b:1", str(module), "--root-id", ROOT, "--plain-http"])
        capsys.readouterr()
        assert rc == 0 and proxy.hits() == 1
    assert reg.manifest_status("five/b", "1") == 200


def test_401_then_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with RegistryServer(tmp_path / "reg", "token") as treg:
        assert treg.issuer is not None
        module = tmp_path / "m.wasm"
        module.write_bytes(fake_module(50_000))
        with FaultProxy(treg.port) as proxy:  # a recorder: no fault
            client = RegistryClient(f"{proxy.host}/tok/a:1", plain_http=True, username=treg.username,
                                    password=treg.password)
            client.push(build_artifact("asm", module.read_bytes(), runtime_config=RC))
        # the first ping had no token (401 with a Bearer challenge); the same request went again with one
        assert proxy.requests[:2] == ["GET /v2/", "GET /v2/"]
        assert treg.issuer.issued, "no token was issued"
        scopes = [(a["name"], set(a["actions"])) for c in treg.issuer.issued for a in c["access"]]
        assert ("tok/a", {"pull", "push"}) in scopes
        assert client.authenticator.header["Authorization"].startswith("Bearer ")
        assert treg.manifest_status("tok/a", "1") == 200


# -- progress: a bar on a terminal for more than 1 MB, nothing otherwise -----------------------------------

def _run_with_tty_stderr(args: list[str], tmp_path: Path) -> tuple[int, bytes, str]:
    master, slave = pty.openpty()
    proc = spawn(args, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env(tmp_path))
    os.close(slave)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed its end
                break
            if not data:
                break
            seen += data
    finally:
        os.close(master)
        out = proc.stdout.read() if proc.stdout else b""
        proc.wait(timeout=60)
    return proc.returncode, out, seen.decode(errors="replace")


def test_progress_bar_on_a_terminal_only_above_1mb(reg: RegistryServer, tmp_path: Path) -> None:
    big, small = tmp_path / "big.wasm", tmp_path / "small.wasm"
    big.write_bytes(fake_module(2 * MiB))
    small.write_bytes(fake_module(500_000))
    rc, out, tty = _run_with_tty_stderr([*CMD, "oras", "push", f"{reg.host}/bar/a:1", str(big), "--root-id", ROOT,
                                         "--plain-http"], tmp_path)
    assert rc == 0, tty
    assert "100%" in tty and "2.1/2.1 MB" in tty and "pushed asm" in tty
    rc, out, tty = _run_with_tty_stderr([*CMD, "oras", "pull", f"{reg.host}/bar/a:1", "-o", str(tmp_path / "p.wasm"),
                                         "--plain-http"], tmp_path)
    assert rc == 0 and "100%" in tty and (tmp_path / "p.wasm").read_bytes() == big.read_bytes()
    rc, out, tty = _run_with_tty_stderr([*CMD, "oras", "push", f"{reg.host}/bar/b:1", str(small), "--root-id", ROOT,
                                         "--plain-http"], tmp_path)
    assert rc == 0 and "%" not in tty and tty.strip().startswith("pushed asm")
    # not a terminal: exactly the summary line, no bar
    proc = subprocess.run([*CMD, "oras", "push", f"{reg.host}/bar/c:1", str(big), "--root-id", ROOT, "--plain-http"],
                          capture_output=True, text=True, env=env(tmp_path), timeout=120, check=False)
    assert proc.returncode == 0 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("pushed asm: 2 blob(s)")
    assert "\r" not in proc.stderr and "%" not in proc.stderr


def test_push_without_a_tag_says_latest(reg: RegistryServer, tmp_path: Path) -> None:
    module = tmp_path / "m.wasm"
    module.write_bytes(fake_module(10_000))
    proc = subprocess.run([*CMD, "oras", "push", f"{reg.host}/notag/a", str(module), "--root-id", ROOT,
                           "--plain-http"], capture_output=True, text=True, env=env(tmp_path), timeout=120, check=False)
    assert proc.returncode == 0
    assert f"note: {reg.host}/notag/a has no tag: using :latest" in proc.stderr
    assert proc.stdout.startswith(f"{reg.host}/notag/a@sha256:")
    assert reg.manifest_status("notag/a", "latest") == 200
    tagged = subprocess.run([*CMD, "oras", "push", f"{reg.host}/notag/a:v1", str(module), "--root-id", ROOT,
                             "--plain-http"], capture_output=True, text=True, env=env(tmp_path), timeout=120,
                            check=False)
    assert tagged.returncode == 0 and "note:" not in tagged.stderr


def test_stats_line_mentions_resumes(reg: RegistryServer, tmp_path: Path) -> None:
    module = tmp_path / "m.wasm"
    module.write_bytes(fake_module(17 * MiB))  # > 16 MiB: chunked
    with FaultProxy(reg.port, Fault(r"^PATCH ", cut_request_after=0)) as proxy:
        proc = subprocess.run([*CMD, "oras", "push", f"{proxy.host}/statres/a:1", str(module), "--root-id", ROOT,
                               "--plain-http"], capture_output=True, text=True, env=env(tmp_path), timeout=120,
                              check=False)
    assert proc.returncode == 0, proc.stderr
    assert "1 upload(s) resumed" in proc.stderr  # cut before any body byte: the registry still knew it
    pulled = tmp_path / "p.wasm"
    assert main(["oras", "pull", f"{reg.host}/statres/a:1", "-o", str(pulled), "--plain-http"]) == 0
    assert pulled.read_bytes() == module.read_bytes()
