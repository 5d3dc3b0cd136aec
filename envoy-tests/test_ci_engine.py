"""`bash .ci/test` stops the podman service it started and leaves alone an engine that was already
running (issue 13 item 7). Each case uses its own engine directory (MESHFILTER_ENGINE_DIR) and socket;
the only engine touched is the one the case itself started, ended by its PID."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshfilter.util.proc import proc_stat

pytestmark = pytest.mark.container

REPO = Path(__file__).resolve().parents[1]


def _ping(sock: Path) -> bool:
    proc = subprocess.run(["curl", "-fsS", "--max-time", "3", "--unix-socket", str(sock), "http://d/_ping"],
                          capture_output=True, text=True)
    return proc.stdout == "OK"


def _is_podman(pid: int) -> bool:
    st = proc_stat(pid)
    return st is not None and st.running and st.comm == "podman"


def _end(pid: int) -> None:
    """End a podman service this test started (checked by PID and name first)."""
    if _is_podman(pid):
        os.kill(pid, 15)
        deadline = time.monotonic() + 15
        while _is_podman(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _is_podman(pid):
            os.kill(pid, 9)


@pytest.fixture
def engine_dir() -> Iterator[Path]:
    """A private engine directory (short path: the socket's path must fit sun_path); whatever podman
    service a test started in it is ended by PID at teardown, also when the test fails."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (bash .ci/system-deps.sh installs it)")
    if _ping(Path("/var/run/docker.sock")):
        pytest.skip("a Docker daemon answers on /var/run/docker.sock: .ci/test uses it and starts nothing")
    d = Path(tempfile.mkdtemp(prefix="mf-engine-"))
    yield d
    pid_file = d / "podman.pid"
    if pid_file.exists():
        _end(int(pid_file.read_text().strip() or 0))
    shutil.rmtree(d, ignore_errors=True)


PROBE = textwrap.dedent("""
    import os

    def test_probe():
        with open(os.environ["PROBE_OUT"], "w") as f:
            f.write(os.environ.get("DOCKER_HOST", "") + "\\n" + os.environ.get("MESHFILTER_ENGINE_STARTED_PID", ""))
""")


def _run_ci_test(tmp_path: Path, env: dict[str, str]) -> tuple[str, str]:
    """``bash .ci/test`` on a one-test probe suite; returns (DOCKER_HOST, STARTED_PID) the suite saw."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "test_probe.py").write_text(PROBE)
    (probe / "pytest.ini").write_text("[pytest]\n")
    out = tmp_path / "probe.out"
    proc = subprocess.run(["bash", str(REPO / ".ci" / "test"), "-q", "-p", "no:cacheprovider", "-c",
                           str(probe / "pytest.ini"), "--rootdir", str(probe), str(probe / "test_probe.py")],
                          env={**env, "PROBE_OUT": str(out)}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    host, _, started = out.read_text().partition("\n")
    return host, started.strip()


def test_ci_test_stops_the_engine_it_started(engine_dir: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "MESHFILTER_ENGINE_STARTED_PID")}
    env["MESHFILTER_ENGINE_DIR"] = str(engine_dir)
    host, started = _run_ci_test(tmp_path, env)
    assert host == f"unix://{engine_dir}/podman.sock"
    assert started, "the suite should know the engine was started for it"
    pid = int(started)
    deadline = time.monotonic() + 15
    while _is_podman(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _is_podman(pid), "the podman service .ci/test started is still running"
    assert not _ping(engine_dir / "podman.sock")
    assert not (engine_dir / "podman.pid").exists()


def test_ci_test_leaves_an_engine_that_was_running_alone(engine_dir: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "MESHFILTER_ENGINE_STARTED_PID")}
    env["MESHFILTER_ENGINE_DIR"] = str(engine_dir)
    subprocess.run(["bash", str(REPO / ".ci" / "container-engine.sh")], env=env, check=True, timeout=300,
                   capture_output=True)
    pid = int((engine_dir / "podman.pid").read_text())
    assert _is_podman(pid) and _ping(engine_dir / "podman.sock")
    env["MESHFILTER_ENGINE_STARTED_PID"] = str(pid)  # a stale value from outside must not count
    host, started = _run_ci_test(tmp_path, env)
    assert host == f"unix://{engine_dir}/podman.sock" and started == ""
    assert _is_podman(pid) and _ping(engine_dir / "podman.sock")


def test_ci_test_leaves_the_engine_of_docker_host_alone(tmp_path: Path) -> None:
    """The shared engine (DOCKER_HOST, as the engineers and CI's own .ci/test export it)."""
    from meshfilter.envoy.engine import engine_unavailable_reason

    host = os.environ.get("DOCKER_HOST", "")
    reason = engine_unavailable_reason()
    if not host.startswith("unix://") or reason:
        pytest.skip(f"no engine at DOCKER_HOST: {reason or host or 'unset'}")
    sock = Path(host.removeprefix("unix://"))
    pid_file = sock.parent / "podman.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else 0
    seen_host, started = _run_ci_test(tmp_path, dict(os.environ))
    assert seen_host == host and started == ""
    assert _ping(sock)
    if pid:
        assert _is_podman(pid)
