"""``meshfilter registry serve``: Debian's docker-registry on loopback, and the pytest plugin's fixtures that
run the same code."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshfilter.oras.client import RegistryClient
from meshfilter.oras.formats import build_artifact
from meshfilter.oras.runtime_config import build_runtime_config
from meshfilter.oras.server import TEMP_PREFIX, RegistryServer
from meshfilter.testing.registry import fake_module
from meshfilter.util.fs import OWNER_FILE
from meshfilter.util.proc import pid_alive, spawn, stop_process

pytestmark = pytest.mark.registry
ROOT = "propaganda_filter_root"
CMD = [sys.executable, "-m", "meshfilter"]


class Serve:
    """A ``meshfilter registry serve`` child: its URL, its stderr so far, its registry's pid."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = spawn([*CMD, "registry", "serve", "--port", "0", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line:
            self.stop()
            raise AssertionError(f"no URL printed; stderr: {self.lines}")
        self.url = line
        self.host = line.split("://", 1)[1]
        self.err = self.wait_err("Ctrl-C stops it")
        self.registry_pid = int(re.search(r"pid (\d+)", self.err).group(1))  # type: ignore[union-attr]
        self.storage = Path(re.search(r"storage (\S+)", self.err).group(1))  # type: ignore[union-attr]

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_err(self, marker: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = "".join(self.lines)
            if marker in text:
                return text
            time.sleep(0.02)
        raise AssertionError(f"{marker!r} not in stderr: {''.join(self.lines)!r}")

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[Serve] = []

    def _start(*args: str, env: dict[str, str] | None = None) -> Serve:
        s = Serve(*args, env=env)
        started.append(s)
        return s

    yield _start
    for s in started:
        s.stop()
        if Path(f"/proc/{s.registry_pid}").exists():  # never leave a registry behind, even when a test failed
            os.kill(s.registry_pid, signal.SIGKILL)


def wait_gone(pid: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def push(host: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    module = tmp_path / "m.wasm"
    module.write_bytes(fake_module(20_000))
    return subprocess.run([*CMD, "oras", "push", f"{host}/serve/ph:1", str(module), "--root-id", ROOT, *extra],
                          capture_output=True, text=True, timeout=60, check=False,
                          env=env or {**os.environ, "DOCKER_CONFIG": str(tmp_path / "none")})


def test_serve_prints_url_and_login_and_stops_cleanly_on_ctrl_c(serve: Any, tmp_path: Path) -> None:
    s = serve()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", s.url)
    assert "login: none needed" in s.err and f"meshfilter oras push {s.host}/REPO:TAG MODULE.wasm --plain-http" in s.err
    assert "(removed on exit)" in s.err and s.storage.name == "data"
    workdir = s.storage.parent
    assert workdir.name.startswith(TEMP_PREFIX) and (workdir / OWNER_FILE).read_text().split()[0] == str(s.proc.pid)
    assert push(s.host, tmp_path, "--plain-http").returncode == 0
    s.proc.send_signal(signal.SIGINT)
    s.proc.wait(timeout=30)
    err = s.wait_err("registry stopped")
    assert s.proc.returncode == 130 and "Traceback" not in err
    assert "registry stopped; its temporary storage removed" in err
    assert wait_gone(s.registry_pid) and not workdir.exists()


def test_sigterm_stops_it_too_and_storage_can_be_kept(serve: Any, tmp_path: Path) -> None:
    storage = tmp_path / "data"
    s = serve("--storage", str(storage))
    assert f"storage {storage} (kept)" in s.err
    assert push(s.host, tmp_path, "--plain-http").returncode == 0
    s.proc.send_signal(signal.SIGTERM)
    s.proc.wait(timeout=30)
    assert wait_gone(s.registry_pid)
    assert list(storage.rglob("*/_manifests/tags/1")), "the pushed tag is kept in --storage"
    # a new registry on the same storage still has it
    s2 = serve("--storage", str(storage))
    assert RegistryClient(f"{s2.host}/serve/ph:1", plain_http=True).get_manifest().digest.startswith("sha256:")


def test_sigkill_takes_the_registry_down_and_the_next_run_reaps_the_storage(serve: Any) -> None:
    s = serve()
    workdir = s.storage.parent
    s.proc.kill()
    s.proc.wait(timeout=10)
    assert wait_gone(s.registry_pid), "the registry outlived its parent (PR_SET_PDEATHSIG)"
    assert workdir.exists()  # nobody could clean up after a SIGKILL...
    serve()
    assert not workdir.exists()  # ...so the next start does


def test_htpasswd_new_file_gets_a_user_and_the_printed_login_works(serve: Any, tmp_path: Path) -> None:
    htpasswd = tmp_path / "auth" / "htpasswd"
    htpasswd.parent.mkdir()
    s = serve("--htpasswd", str(htpasswd))
    password_file = Path(f"{htpasswd}.password")
    assert htpasswd.exists() and stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text().strip()
    line = next(x for x in s.err.splitlines() if "login:" in x)
    command = line.split("login: ", 1)[1].split("   (")[0]
    assert command == (f"meshfilter oras login {s.host} --username meshfilter --password-stdin --plain-http "
                       f"< {password_file}")
    assert password not in s.err
    cfg = tmp_path / "docker"
    env = {**os.environ, "DOCKER_CONFIG": str(cfg)}
    assert push(s.host, tmp_path, "--plain-http", env=env).returncode == 1  # not logged in yet
    login = subprocess.run(command.replace("meshfilter ", f"{sys.executable} -m meshfilter ", 1), shell=True,
                           capture_output=True, text=True, env=env, timeout=60, check=False)
    assert login.returncode == 0, login.stderr
    assert push(s.host, tmp_path, "--plain-http", env=env).returncode == 0
    # an existing file is used as it is, and the login line names its users
    s.stop()
    s2 = serve("--htpasswd", str(htpasswd))
    assert "(users in" in s2.err and ": meshfilter)" in s2.err


def test_tls_prints_the_ca_to_trust(serve: Any, tmp_path: Path) -> None:
    s = serve("--tls")
    assert s.url.startswith("https://")
    ca = re.search(r"--ca-file (\S+)", s.err).group(1)  # type: ignore[union-attr]
    assert Path(ca).is_file()
    assert push(s.host, tmp_path, "--ca-file", ca).returncode == 0
    untrusted = push(s.host, tmp_path)
    assert untrusted.returncode == 1 and "certificate not trusted" in untrusted.stderr


def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        proc = subprocess.run([*CMD, "registry", "serve", "--port", str(port)], capture_output=True, text=True,
                              timeout=60, check=False)
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1
    assert f"--port: port {port} on 127.0.0.1 is taken (hint: choose another --port, or 0 for a free one)" in \
        proc.stderr


def test_server_start_failure_tears_down_and_names_the_log(tmp_path: Path) -> None:
    fake = tmp_path / "fake-registry"
    fake.write_text("#!/bin/sh\necho 'configuration error: nope' >&2\nexit 3\n")
    fake.chmod(0o755)
    server = RegistryServer(binary=str(fake), timeout=5)
    with pytest.raises(Exception) as exc:
        server.start()
    assert "exited with 3" in str(exc.value) and "configuration error: nope" in str(exc.value)
    assert server.proc is None and server.workdir is not None and not server.workdir.exists()


# -- the pytest plugin's fixtures: the same server ----------------------------------------------------------

def test_plugin_oci_registry_fixture(oci_registry: RegistryServer) -> None:
    assert isinstance(oci_registry, RegistryServer) and oci_registry.plain_http
    art = build_artifact("asm", fake_module(5_000), runtime_config=build_runtime_config([ROOT]).to_bytes())
    digest = RegistryClient(f"{oci_registry.host}/plugin/a:1", **oci_registry.client_kwargs()).push(art)
    assert RegistryClient(f"{oci_registry.host}/plugin/a@{digest}", **oci_registry.client_kwargs()).pull()


def test_plugin_oci_registry_factory(oci_registry_factory: Any) -> None:
    reg = oci_registry_factory(users={"alice": "s3cret-pw"})
    kw = reg.client_kwargs()
    assert kw["username"] == "alice" and kw["password"] == "s3cret-pw"
    art = build_artifact("asm", fake_module(5_000), runtime_config=build_runtime_config([ROOT]).to_bytes())
    RegistryClient(f"{reg.host}/plugin/b:1", **kw).push(art)
    pid = reg.pid
    assert pid is not None and pid_alive(pid)
