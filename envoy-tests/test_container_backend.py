"""The container backend against a real engine (Podman's or Docker's Engine API) and a real Envoy.

Skips only when no engine answers (and CI turns that skip into a failure, see the root conftest).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshfilter.envoy import EchoServer
from meshfilter.envoy import bootstrap as b
from meshfilter.envoy.container import (
    LABEL_HOST,
    LABEL_MANAGED,
    LABEL_NAME,
    LABEL_PID,
    LABEL_PID_START,
    LABEL_SESSION,
    SESSION,
    ContainerBackend,
    cleanup_leftovers,
    container_labels,
    managed_containers,
    owner_labels,
)
from meshfilter.envoy.elfdeps import read_elf
from meshfilter.envoy.engine import engine_client, engine_unavailable_reason
from meshfilter.envoy.image import LABEL_BUILD_ID, build_image
from meshfilter.errors import ContainerError, EnvoyError

pytestmark = [pytest.mark.container, pytest.mark.envoy]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    reason = engine_unavailable_reason()
    if reason:
        pytest.skip(f"no container engine: {reason}")
    c = engine_client()
    yield c
    c.close()


@pytest.fixture(scope="module")
def backend(client: Any) -> ContainerBackend:
    be = ContainerBackend(client=client)
    be.image()  # build (or reuse) the image once, outside any start timeout
    return be


@pytest.fixture
def backend_bridge(client: Any, backend: ContainerBackend) -> ContainerBackend:
    be = ContainerBackend(client=client, network="bridge", cleanup=False)
    be._image = backend.image()
    return be


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310
        return resp.status, resp.read()


def _direct_bootstrap(body: str = "hello from a container") -> dict[str, Any]:
    return b.bootstrap(listeners=[b.http_listener("main", 0, routes=[b.direct_response_route(body)])])


def _exists(client: Any, container_id: str) -> bool:
    from docker.errors import NotFound

    try:
        client.containers.get(container_id)
        return True
    except NotFound:
        return False


# ---------------------------------------------------------------- image

def test_envoy_image_is_built_from_the_wheel_binary_and_runs(client: Any, backend: ContainerBackend) -> None:
    info = backend.image()
    image = client.images.get(info.ref)
    from meshfilter.envoy.binary import find_envoy

    assert image.labels.get(LABEL_BUILD_ID) == read_elf(find_envoy()).build_id
    assert info.ref.startswith("localhost/meshfilter/envoy:1.")
    out = client.containers.run(info.ref, ["--version"], remove=True).decode()
    assert "version:" in out and info.ref.rsplit(":", 1)[1] in out


def test_image_build_from_elf_deps_runs_a_dynamic_binary_in_scratch(client: Any, tmp_path: Path) -> None:
    """The same builder on a small dynamic binary: it runs in a FROM-scratch image only if every
    library from the ELF closure made it into the image."""
    tag = f"localhost/meshfilter/elfdeps-test:{os.getpid()}"
    info = build_image(client, tag=tag, binary="/usr/bin/env")
    try:
        assert info.built
        out = client.containers.run(tag, ["MESHFILTER_PROBE=ok"], remove=True).decode()
        assert "MESHFILTER_PROBE=ok" in out
    finally:
        client.images.remove(info.id, force=True)


def test_concurrent_first_use_builds_the_image_once(client: Any) -> None:
    tag = f"localhost/meshfilter/lock-test:{os.getpid()}"
    code = ("import json; from meshfilter.envoy.engine import engine_client; "
            "from meshfilter.envoy.image import ensure_image; "
            f"i = ensure_image(engine_client(), tag={tag!r}, binary='/usr/bin/env'); "
            "print(json.dumps([i.built, i.id]))")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        results = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
        assert sorted(r[0] for r in results) == [False, True]  # one built, the other waited and reused it
        assert results[0][1] == results[1][1]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        from docker.errors import ImageNotFound

        try:
            client.images.remove(tag, force=True)
        except ImageNotFound:
            pass
        # the per-test tag's build lock (a file in the temp dir): nobody else uses it, so it goes too
        lock = Path(tempfile.gettempdir()) / f"meshfilter-image-{re.sub(r'[^A-Za-z0-9_.-]', '_', tag)}.lock"
        lock.unlink(missing_ok=True)


def test_cli_image_build_reuses_cached_image_and_reports_json(backend: ContainerBackend,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from meshfilter.cli.envoy_image import register_image

    parser = argparse.ArgumentParser()
    register_image(parser.add_subparsers())
    args = parser.parse_args(["image", "build", "--json"])
    assert args.handler(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["image"] == backend.image().ref
    assert out["built"] is False and out["id"] == backend.image().id


def test_cli_image_build_through_meshfilter_main(backend: ContainerBackend) -> None:
    proc = subprocess.run([sys.executable, "-m", "meshfilter", "envoy", "image", "build"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == backend.image().ref and "cached" in proc.stdout


def test_cli_image_with_missing_image_is_one_line_error(client: Any) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "meshfilter", "envoy", "image", "build", "--image",
         "127.0.0.1:9/meshfilter/absent:1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "127.0.0.1:9/meshfilter/absent:1" in lines[0] and "hint:" in lines[0]


# ---------------------------------------------------------------- backend

def test_backend_starts_envoy_ready_and_proxies_to_host_upstream(client: Any,
                                                                backend: ContainerBackend) -> None:
    with EchoServer() as echo:
        bs = b.filter_bootstrap([b.header_mutation_set("x-from", "container")], upstream=(echo.host, echo.port))
        with backend.start(bs, name="proxy") as envoy:
            assert _get(f"{envoy.admin_url}/ready") == (200, b"LIVE\n")
            status, body = _get(envoy.url("main", "/some/path"))
            assert status == 200
            seen = json.loads(body)
            assert seen["path"] == "/some/path" and seen["headers"]["x-from"] == "container"
            c = client.containers.get(envoy.id)
            assert c.status == "running" and c.attrs["HostConfig"]["NetworkMode"] == "host"
            assert envoy.cpu_seconds() > 0 and envoy.rss_bytes() > 0
        assert not _exists(client, envoy.id)


def test_bad_bootstrap_fails_with_envoys_error_line_and_is_removed(client: Any,
                                                                   backend: ContainerBackend) -> None:
    bs = _direct_bootstrap()
    bs["static_resources"]["clusters"] = [{"name": "broken", "type": "STATIC", "connect_timeout": "nonsense"}]
    with pytest.raises(EnvoyError) as err:
        backend.start(bs, name="broken", timeout=60)
    # Envoy's own error line (not the last line of the dumped config) is in the one-line message.
    assert "exited before it was ready" in str(err.value)
    assert "duration must start" in " ".join(str(err.value).split()), str(err.value)
    assert "[critical]" in err.value.log_tail and "nonsense" in err.value.log_tail
    assert not [c for c in managed_containers(client, owner_pid=os.getpid())
                if container_labels(c).get(LABEL_NAME) == "broken"]


def test_bootstrap_and_referenced_files_are_mounted_read_only_at_identical_paths(
        client: Any, backend: ContainerBackend, tmp_path: Path) -> None:
    body = tmp_path / "body.txt"
    body.write_text("served from a host file")
    extra = tmp_path / "extra.bin"
    extra.write_bytes(b"\0" * 16)
    bs = b.bootstrap(listeners=[b.http_listener("main", 0, routes=[
        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"filename": str(body)}}}])])
    with backend.start(bs, name="mounts", files=(extra,)) as envoy:
        assert _get(envoy.url("main", "/")) == (200, b"served from a host file")
        mounts = {m["Destination"]: m for m in client.containers.get(envoy.id).attrs["Mounts"]}
        config = envoy.workdir / "envoy.json"
        for path in (body, extra, config):
            assert path.as_posix() in mounts, sorted(mounts)
            assert mounts[path.as_posix()]["Source"] == path.as_posix()
            assert mounts[path.as_posix()]["RW"] is False
        assert mounts[(envoy.workdir / "run").as_posix()]["RW"] is True


def test_containers_carry_owner_labels(client: Any, backend: ContainerBackend) -> None:
    with backend.start(_direct_bootstrap(), name="labelled") as envoy:
        labels = client.containers.get(envoy.id).labels
        assert labels[LABEL_MANAGED] == "true"
        assert labels[LABEL_PID] == str(os.getpid())
        assert labels[LABEL_SESSION] == SESSION
        assert labels[LABEL_NAME] == "labelled"
        assert labels[LABEL_PID_START] and labels[LABEL_HOST]


def test_bridge_network_with_published_ports(client: Any, backend_bridge: ContainerBackend) -> None:
    with backend_bridge.start(_direct_bootstrap("via a published port"), name="bridged") as envoy:
        assert _get(envoy.url("main", "/")) == (200, b"via a published port")
        assert _get(f"{envoy.admin_url}/ready")[0] == 200
        attrs = client.containers.get(envoy.id).attrs
        assert attrs["HostConfig"]["NetworkMode"] != "host"
        published = attrs["NetworkSettings"]["Ports"]
        port = envoy.listener_ports["main"]
        assert published[f"{port}/tcp"][0]["HostPort"] == str(port)
        # Envoy listens on 0.0.0.0 inside the container (the rewrite), published on host loopback.
        listeners = json.loads(_get(f"{envoy.admin_url}/listeners?format=json")[1])
        addr = listeners["listener_statuses"][0]["local_address"]["socket_address"]
        assert addr["address"] == "0.0.0.0"


def test_cli_envoy_run_backend_container_serves_and_removes_its_container(client: Any,
                                                                         backend: ContainerBackend) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "meshfilter", "envoy", "run", "--backend", "container"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        status, body = _get(url + "/via-cli")
        assert status == 200 and json.loads(body)["path"] == "/via-cli"
        mine = managed_containers(client, owner_pid=proc.pid)
        assert len(mine) == 1 and mine[0].status == "running"
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 143  # 128 + SIGTERM, after the container was removed
        assert not managed_containers(client, owner_pid=proc.pid)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        for c in managed_containers(client, owner_pid=proc.pid):
            c.remove(force=True)


# ---------------------------------------------------------------- leftovers and cleanup

def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_leftover_with_dead_owner_is_removed_and_live_owner_kept(client: Any,
                                                                 backend: ContainerBackend) -> None:
    image = backend.image().ref
    dead = client.containers.create(image, ["--version"], labels=owner_labels("crashed", pid=_dead_pid()))
    live = client.containers.create(image, ["--version"], labels=owner_labels("mine"))
    try:
        removed = cleanup_leftovers(client)
        assert dead.id in removed and not _exists(client, dead.id)
        assert live.id not in removed and _exists(client, live.id)
    finally:
        live.remove(force=True)
        if _exists(client, dead.id):
            dead.remove(force=True)


_CHILD = textwrap.dedent("""
    import sys, time
    from meshfilter.envoy import bootstrap as b
    from meshfilter.envoy.container import ContainerBackend
    be = ContainerBackend()
    mode = sys.argv[1]
    env = be.start(b.bootstrap(listeners=[b.http_listener("main", 0, routes=[b.direct_response_route("x")])]),
                   name="child-" + mode)
    print(env.id, flush=True)
    if mode == "sleep":
        time.sleep(300)
    elif mode == "raise":
        raise SystemExit(3)
    # mode "exit": normal interpreter exit without stop(): the atexit hook removes the container
""")


def _run_child(mode: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line:
        proc.kill()
        raise AssertionError(f"child did not start a container: {proc.communicate(timeout=30)[1][-2000:]}")
    return proc, line


def test_sigkilled_owner_leaves_a_container_that_cleanup_removes(client: Any,
                                                                 backend: ContainerBackend) -> None:
    proc, cid = _run_child("sleep")
    try:
        assert client.containers.get(cid).status == "running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert client.containers.get(cid).status == "running"  # nobody stopped it
        assert cid in cleanup_leftovers(client)
        assert not _exists(client, cid)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        if _exists(client, cid):
            client.containers.get(cid).remove(force=True)


@pytest.mark.parametrize("mode", ["exit", "raise"])
def test_container_removed_when_owner_exits(client: Any, backend: ContainerBackend, mode: str) -> None:
    proc, cid = _run_child(mode)
    try:
        proc.wait(timeout=60)
        assert proc.returncode == (0 if mode == "exit" else 3)
        assert not _exists(client, cid)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        if _exists(client, cid):
            client.containers.get(cid).remove(force=True)


def test_child_suite_leaves_no_container_running(client: Any, backend: ContainerBackend,
                                                 tmp_path: Path) -> None:
    """A child pytest session using the envoy-tests fixtures on the container backend: after it, no
    container with its labels is left (the session-end check in envoy-tests/conftest.py passes)."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text((REPO / "envoy-tests" / "conftest.py").read_text())
    (suite / "test_child.py").write_text(textwrap.dedent("""
        import os, urllib.request
        from meshfilter.envoy import bootstrap as b

        def test_start(start, envoy_backend):
            env = start(b.bootstrap(listeners=[b.http_listener("main", 0, routes=[b.direct_response_route("k")])]),
                        name="child-suite")
            assert urllib.request.urlopen(env.url("main", "/")).read() == b"k"
            open(os.environ["PID_FILE"], "w").write(str(os.getpid()))
    """))
    pid_file = tmp_path / "pid"
    env = {**os.environ, "PID_FILE": str(pid_file)}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "container",
                           "--rootdir", str(suite), str(suite)], capture_output=True, text=True, env=env,
                          timeout=600, cwd=suite)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout
    child_pid = int(pid_file.read_text())
    assert not managed_containers(client, owner_pid=child_pid)
    assert time.monotonic() - start < 600


def test_session_so_far_has_no_stopped_or_running_leftovers(client: Any, backend: ContainerBackend) -> None:
    """Every container this test process started earlier in the session is gone (not merely stopped)."""
    mine = managed_containers(client, owner_pid=os.getpid())
    assert not mine, [(c.id[:12], c.status, container_labels(c).get(LABEL_NAME)) for c in mine]


def test_engine_unavailable_reason_names_the_socket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    reason = engine_unavailable_reason()
    assert reason is not None and "absent.sock" in reason
    with pytest.raises(ContainerError):
        ContainerBackend()
