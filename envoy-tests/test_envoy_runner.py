"""The Envoy runner, `meshfilter envoy run` and `meshfilter envoy validate` against a real Envoy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from meshfilter.cli import main
from meshfilter.envoy import EchoServer, bootstrap, validate_bootstrap
from meshfilter.errors import EnvoyError, EnvoyValidationError


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def test_filter_reaches_upstream_and_stop_leaves_no_process(start) -> None:
    with EchoServer() as echo:
        bs = bootstrap.filter_bootstrap([bootstrap.header_mutation_set("route-v", "hello2v2")],
                                        upstream=(echo.host, echo.port))
        env = start(bs)
        body = _get_json(env.url("main", "/x"))
        assert body["headers"]["route-v"] == "hello2v2"
        assert body["path"] == "/x"
        env.stop()
        with pytest.raises(OSError):
            urllib.request.urlopen(env.url("main", "/x"), timeout=2)


def test_start_failure_raises_with_envoy_error_line(start) -> None:
    bad = bootstrap.filter_bootstrap([bootstrap.lua_filter("this is not lua(")])
    with pytest.raises(EnvoyError) as exc:
        start(bad, timeout=30)
    assert "exited before it was ready" in exc.value.what
    assert exc.value.log_tail  # Envoy's own log is attached
    assert "lua" in exc.value.log_tail.lower()


def test_process_backend_ends_envoy_by_pid() -> None:
    from meshfilter.envoy import ProcessBackend

    env = ProcessBackend().start(bootstrap.filter_bootstrap([]))
    pid = env.pid
    assert Path(f"/proc/{pid}").exists()
    env.stop()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_validate_bootstrap_ok_and_error_line(tmp_path: Path) -> None:
    out = validate_bootstrap(bootstrap.filter_bootstrap([]))
    assert "loading 1 listener" in out
    with pytest.raises(EnvoyValidationError) as exc:
        validate_bootstrap({"static_resources": {"listeners": [{"name": "x"}]}})
    assert "address is necessary" in exc.value.what


def test_cli_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(json.dumps(bootstrap.filter_bootstrap([])))
    assert main(["envoy", "validate", str(good)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"static_resources": {"listeners": [{"name": "x"}]}}')
    assert main(["envoy", "validate", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "address is necessary" in err[0]
    assert main(["envoy", "validate", str(tmp_path / "missing.json")]) == 2


def test_cli_envoy_run_serves_until_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "tag.lua"
    script.write_text('function envoy_on_request(h) h:headers():replace("x-tag", "v1") end\n')
    proc = subprocess.Popen([sys.executable, "-m", "meshfilter", "envoy", "run", "--lua", str(script)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        body = _get_json(url + "/hello")
        assert body["headers"]["x-tag"] == "v1"
        children = _children(proc.pid)
        assert children, "envoy should be a child of the CLI"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 143  # 128 + SIGTERM (130 for Ctrl-C), after the clean-up
        time.sleep(0.2)
        for pid in children:
            assert not _alive(pid), f"envoy pid {pid} survived SIGTERM of the CLI"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()
