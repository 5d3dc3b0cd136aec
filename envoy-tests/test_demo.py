"""The seed's end-to-end demos on a local mesh of real Envoys (seed 2.2 A/B test, 2.4 canary).

Each mesh: six app processes, six sidecar Envoys, one ingress Envoy, on the process and the container
backend (``envoy_backend``). The greeting chains are asserted byte for byte.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshfilter.demo import AB_PROBES, CANARY_PROBES, ab_mesh, canary_mesh, run_probes
from meshfilter.demo.apps import greeting_line
from meshfilter.demo.run import LocalMesh
from meshfilter.errors import DemoError

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

IP = "127.0.0.1"


def chain(*versions: str) -> str:
    """The seed's text form of a chain, e.g. chain("v2", "v2", "v1")."""
    greet = {"v1": "Hello", "v2": "Bonjour"}
    return "<".join(greeting_line(greet[v], "eric", f"hello{i + 1}", IP) for i, v in enumerate(versions))


ALL_V2 = chain("v2", "v2", "v2")
ALL_V1 = chain("v1", "v1", "v1")


def test_chain_helper_matches_the_seed_text() -> None:
    assert ALL_V2 == ("Bonjour eric@hello1:127.0.0.1<Bonjour eric@hello2:127.0.0.1<"
                      "Bonjour eric@hello3:127.0.0.1")


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie not yet reaped by us counts as dead
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _wait_dead(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if not _dead(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if not _dead(p)]
    return alive


def _procs_with_token(token: str) -> list[int]:
    """PIDs of live processes whose environment carries ``token`` (inherited from a CLI run)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if token.encode() in (d / "environ").read_bytes() and not _dead(int(d.name)):
                out.append(int(d.name))
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return out


@pytest.fixture
def backend_name(envoy_backend: Any) -> str:
    return str(envoy_backend.name)


@pytest.fixture
def meshes() -> Iterator[list[LocalMesh]]:
    """Meshes registered here are stopped at teardown, also when the test fails."""
    started: list[LocalMesh] = []
    yield started
    for m in started:
        m.stop()


# ------------------------------------------------------------------------------------ the A/B test

def test_ab_cli_prints_both_chains_in_the_seed_form() -> None:
    """The CLI end to end (process backend; the container backend runs the same library code in
    test_ab_chains_and_module_placement)."""
    token = f"MESHFILTER_DEMO_TEST_TOKEN={uuid.uuid4().hex}"
    env = {**os.environ, token.split("=")[0]: token.split("=")[1]}
    proc = subprocess.run([sys.executable, "-m", "meshfilter", "demo", "ab", "--port", "0"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4, proc.stdout
    assert lines[0].startswith("$ curl -H 'route-v: v2' http://127.0.0.1:") and lines[0].endswith("/hello/eric")
    assert lines[1] == ALL_V2
    assert lines[2].startswith("$ curl http://127.0.0.1:")
    assert lines[3] == ALL_V1
    assert "hello1-propagate-header" in proc.stderr and "hello2-propagate-header" in proc.stderr
    assert _procs_with_token(token.split("=")[1]) == []


def test_ab_only_hello1_gives_v2_v2_v1(backend_name: str, meshes: list[LocalMesh]) -> None:
    mesh = ab_mesh(backend=backend_name, port=0, only=["hello1"])
    meshes.append(mesh)
    mesh.start()
    with_header, without = run_probes(mesh, AB_PROBES)
    assert (with_header.status, with_header.body) == (200, chain("v2", "v2", "v1"))
    assert (without.status, without.body) == (200, ALL_V1)
    # the module, not the app, sets route-v: hello2-v2's outbound has no filter, so hello3 gets v1
    assert mesh.get("/hello/eric", {"route-v": "hello2v2"}) == (200, ALL_V1)
    pids = mesh.pids()
    mesh.stop()
    assert _wait_dead(pids) == []


def test_ab_chains_and_module_placement(backend_name: str, meshes: list[LocalMesh]) -> None:
    mesh = ab_mesh(backend=backend_name, port=0)
    meshes.append(mesh)
    mesh.start()
    with_header, without = run_probes(mesh, AB_PROBES)
    assert (with_header.status, with_header.body) == (200, ALL_V2)
    assert (without.status, without.body) == (200, ALL_V1)
    # a client cannot steer inner hops directly: only hello1's rule looks at the client's header
    assert mesh.get("/hello/eric", {"route-v": "hello3v2"}) == (200, ALL_V1)
    # a Wasm VM runs in exactly the sidecars the ASMFilterDeployments select
    running = {name: env.stats("wasm").get("wasm.envoy.wasm.runtime.v8.active", 0) > 0
               for name, env in mesh.sidecars.items()}
    assert running == {"hello1-v1": False, "hello1-v2": True, "hello2-v1": False, "hello2-v2": True,
                       "hello3-v1": False, "hello3-v2": False}
    # an app exits when the orchestrator's pipe closes (what the kernel does when the orchestrator is
    # killed, with no clean-up at all), so apps never linger
    app = mesh.apps["hello3-v1"]
    assert app.proc.stdin is not None
    app.proc.stdin.close()
    assert app.proc.wait(timeout=10) == 0


# ------------------------------------------------------------------------------------ the canary

def test_canary_iphone13_rides_gray_everything_else_base(backend_name: str, meshes: list[LocalMesh]) -> None:
    mesh = canary_mesh(backend=backend_name, port=0)
    meshes.append(mesh)
    mesh.start()
    gray, base, spoofed = run_probes(mesh, CANARY_PROBES)
    assert (gray.status, gray.body) == (200, ALL_V2)
    assert (base.status, base.body) == (200, ALL_V1)
    assert (spoofed.status, spoofed.body) == (200, ALL_V1)
    # an empty user agent: base, and no Lua error in the gateway's log
    assert mesh.get("/hello/eric", {"user-agent": ""}) == (200, ALL_V1)
    assert mesh.ingress is not None
    log = mesh.ingress.log_text()
    assert not [ln for ln in log.splitlines() if "[error]" in ln and "lua" in ln], log[-2000:]


# ------------------------------------------------------------------------------------ robustness
# (process backend: these test the orchestration, not the Envoy runner)

def test_a_component_failing_to_start_tears_everything_down(meshes: list[LocalMesh]) -> None:
    seen: dict[str, list[int]] = {}

    def break_ingress(boot: dict[str, Any]) -> dict[str, Any]:
        seen["pids"] = mesh.pids()  # everything but the ingress is up now
        boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
            "route_config"]["virtual_hosts"][0]["routes"][0]["route"]["cluster"] = "no-such-cluster"
        return boot

    mesh = ab_mesh(port=0, ingress_bootstrap_override=break_ingress)
    meshes.append(mesh)
    with pytest.raises(DemoError) as info:
        mesh.start()
    err = info.value
    assert err.component == "ingress"
    assert "no-such-cluster" in err.log_tail  # Envoy's own complaint is in the tail
    assert len(seen["pids"]) == 12  # 6 apps + 6 sidecar Envoys were running
    assert _wait_dead(seen["pids"]) == []
    assert mesh.pids() == []


def test_an_app_failing_to_start_is_named_with_its_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        meshes: list[LocalMesh]) -> None:
    from meshfilter.demo import run as demo_run

    broken_python = tmp_path / "python"
    broken_python.write_text("#!/bin/sh\necho 'boom: cannot start' >&2\nexit 3\n")
    broken_python.chmod(0o755)
    real = demo_run.AppProcess
    started: list[int] = []

    def app_process(instance: Any, topology: Any, workdir: Path) -> Any:
        python = str(broken_python) if instance.name == "hello2-v2" else sys.executable
        app = real(instance, topology, workdir, python=python)
        started.append(app.pid)
        return app

    monkeypatch.setattr(demo_run, "AppProcess", app_process)
    mesh = ab_mesh(port=0)
    meshes.append(mesh)
    with pytest.raises(DemoError) as info:
        mesh.start()
    assert info.value.component == "app hello2-v2"
    assert "exited with status 3" in info.value.what
    assert "boom: cannot start" in info.value.log_tail
    assert len(started) == 6 and _wait_dead(started) == []
    assert mesh.pids() == []


@pytest.mark.parametrize("demo", ["ab", "canary"])
def test_cli_taken_port_is_one_line_before_anything_starts(demo: str) -> None:
    token = uuid.uuid4().hex
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "meshfilter", "demo", demo, "--port", str(port)],
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "MESHFILTER_DEMO_TEST_TOKEN": token})
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"meshfilter: error: --port: port {port} is taken (hint: stop what listens there, or choose another "
        "--port (0: any free one))"]
    assert proc.stdout == ""
    assert _procs_with_token(token) == []


def test_ingress_failing_to_bind_still_prints_its_log_tail_and_leaves_nothing(meshes: list[LocalMesh]) -> None:
    """The port check comes first, but a port taken between the check and the bind still fails with
    the ingress's own log line (the library path the CLI's check does not cover)."""
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    seen: dict[str, list[int]] = {}

    def take_port(boot: dict[str, Any]) -> dict[str, Any]:
        seen["pids"] = mesh.pids()
        boot["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = port
        return boot

    mesh = ab_mesh(port=0, ingress_bootstrap_override=take_port)
    meshes.append(mesh)
    try:
        with pytest.raises(DemoError) as info:
            mesh.start()
    finally:
        blocker.close()
    assert info.value.component == "ingress"
    assert f"cannot bind '127.0.0.1:{port}': Address already in use" in info.value.log_tail
    assert _wait_dead(seen["pids"]) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_everything_on_signal(sig: signal.Signals) -> None:
    token = uuid.uuid4().hex
    proc = subprocess.Popen([sys.executable, "-m", "meshfilter", "demo", "ab", "--port", "0", "--serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MESHFILTER_DEMO_TEST_TOKEN": token})
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 240
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "serving on" in line or time.monotonic() > deadline:
                break
        assert any("serving on" in ln for ln in seen), "".join(seen)
        children = _procs_with_token(token)
        assert len(children) >= 13  # the CLI, 6 apps, 7 Envoys
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
        assert rc == 128 + sig  # 130 for Ctrl-C, 143 for SIGTERM: the same convention as `envoy run`
        assert _wait_dead(children) == []
        assert _procs_with_token(token) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigkill_of_serve_leaves_no_envoy_no_app_no_port_and_the_next_run_reaps_its_temp_dirs() -> None:
    from meshfilter.util.fs import owned_tempdirs
    from meshfilter.util.ports import port_is_free

    token = uuid.uuid4().hex
    proc = subprocess.Popen([sys.executable, "-m", "meshfilter", "demo", "ab", "--port", "0", "--serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MESHFILTER_DEMO_TEST_TOKEN": token})
    try:
        assert proc.stderr is not None
        serving = ""
        for line in proc.stderr:
            if "serving on" in line:
                serving = line
                break
        assert serving, "the demo did not come up"
        port = int(serving.split("serving on http://127.0.0.1:")[1].split()[0].rstrip("/"))
        children = [p for p in _procs_with_token(token) if p != proc.pid]
        assert len(children) == 13  # 6 apps, 7 Envoys
        dirs = owned_tempdirs(proc.pid)
        assert len(dirs) == 8  # the mesh's and each Envoy's
        proc.kill()
        proc.wait(timeout=30)
        assert _wait_dead(children) == [], "children outlived the SIGKILLed demo"
        deadline = time.monotonic() + 15
        while not port_is_free(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert port_is_free(port), f"the ingress port {port} is still taken"
        assert all(d.exists() for d in dirs)
        # the next run (anything that makes a meshfilter temp dir) removes the dead run's directories
        subprocess.run([sys.executable, "-c", "from meshfilter.util.fs import OwnedTempDir; "
                        "OwnedTempDir('next-run-').cleanup()"], check=True, timeout=60)
        assert not any(d.exists() for d in dirs)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_two_demos_at_once(meshes: list[LocalMesh]) -> None:
    a, b = ab_mesh(), canary_mesh()  # both ask for 8001: one gets it (if free), the other a free port
    meshes += [a, b]
    errors: list[BaseException] = []

    def start(m: LocalMesh) -> None:
        try:
            m.start()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(m,)) for m in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert a.ingress_port != b.ingress_port
    assert a.get("/hello/eric", {"route-v": "v2"}) == (200, ALL_V2)
    assert b.get("/hello/eric", {"user-agent": "x iPhone13 y"}) == (200, ALL_V2)
    assert a.get("/hello/eric") == (200, ALL_V1)
    assert set(a.pids()).isdisjoint(b.pids())
    pids = a.pids() + b.pids()
    a.stop()
    b.stop()
    assert _wait_dead(pids) == []
