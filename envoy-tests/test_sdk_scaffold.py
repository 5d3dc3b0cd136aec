"""The issue's "done when", as a user does it: `meshfilter new canary`, `pytest` in it passes (the
reference, the emulator and a real Envoy, through the pytest plugin), then the module built with
`meshfilter wasm build python` and the script built with `meshfilter lua build`, run by
`meshfilter envoy run`, behave as the reference runner said. On both Envoy backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshfilter.sdk import run_request
from meshfilter.testing.sdk import load_class
from meshfilter.util.proc import spawn, stop_process

REQUESTS = [[("user-agent", "Mozilla/5.0 (iPhone13,2)")], [("user-agent", "curl/8")],
            [("user-agent", "iPhone13"), ("x-canary-tag", "forged"), ("x-canary-tag", "twice")], []]


def run(cmd: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``cmd`` to its end (killed with us, however we die); (exit code, stdout, stderr)."""
    proc = spawn(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        stop_process(proc)
    return proc.returncode, out, err


def meshfilter(*args: str, cwd: Path) -> tuple[int, str, str]:
    return run([sys.executable, "-m", "meshfilter", *args], cwd=cwd, timeout=120)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    rc, _, err = meshfilter("new", "canary", cwd=tmp_path)
    assert rc == 0, err
    return tmp_path / "canary"


@pytest.fixture
def envoy_run(envoy_backend: Any) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def run(*args: str, cwd: Path) -> str:
        proc = spawn([sys.executable, "-m", "meshfilter", "envoy", "run", "--backend", envoy_backend.name, *args],
                     cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://"), proc.stderr.read() if proc.stderr else ""
        return url

    yield run
    for proc in started:
        stop_process(proc, timeout=30)
        assert proc.returncode == 128 + 15  # SIGTERM, unwound: its Envoy stopped too


def test_pytest_passes_in_a_fresh_project(project: Path, envoy_backend: Any) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    rc, out, err = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--meshfilter-backend",
                        envoy_backend.name], cwd=project, timeout=600, env=env)
    assert rc == 0, out[-3000:] + err[-2000:]
    assert "4 passed" in out


def _ask(url: str, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    req = urllib.request.Request(url + "/")
    for k, v in headers:
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=20) as resp:  # noqa: S310 - loopback
        return [(k, v) for k, v in json.load(resp)["raw_headers"]]


def test_built_module_and_script_in_envoy_behave_like_the_reference(project: Path, envoy_run: Any) -> None:
    config = (project / "config.json").read_text()
    assert meshfilter("wasm", "build", "python", "filter.py", "-o", "canary.wasm", cwd=project)[0] == 0
    rc, _, err = meshfilter("lua", "build", "filter.py", "--config", config, "-o", "canary.lua", cwd=project)
    assert rc == 0, err
    canary = load_class(project / "filter.py", "Canary")
    header = json.loads(config)["header"]
    urls = [envoy_run("--wasm", "canary.wasm", "--config", config, cwd=project),
            envoy_run("--lua", "canary.lua", cwd=project)]
    for headers in REQUESTS:
        want = run_request(canary, config, [(":path", "/"), *headers]).request_header(header)
        assert want in ("version-gray", "version-base")
        for url in urls:
            seen = _ask(url, headers)
            assert [v for k, v in seen if k == header] == [want], (url, headers, seen)
