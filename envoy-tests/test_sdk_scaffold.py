"""The issue's "done when", as a user does it: `meshfilter new canary`, `pytest` in it passes (the
reference, the emulator and a real Envoy, through the pytest plugin), then the module built with
`meshfilter wasm build python` and the script built with `meshfilter lua build`, run by
`meshfilter envoy run`, behave as the reference runner said. On both Envoy backends."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshfilter.sdk import run_request
from meshfilter.testing.sdk import load_class
from meshfilter.util.proc import stop_process

REQUESTS = [[("user-agent", "Mozilla/5.0 (iPhone13,2)")], [("user-agent", "curl/8")],
            [("user-agent", "iPhone13"), ("x-canary-tag", "forged"), ("x-canary-tag", "twice")], []]


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def meshfilter(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meshfilter", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, preexec_fn=_die_with_parent)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    done = meshfilter("new", "canary", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path / "canary"


@pytest.fixture
def envoy_run(envoy_backend: Any) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def run(*args: str, cwd: Path) -> str:
        proc = subprocess.Popen([sys.executable, "-m", "meshfilter", "envoy", "run", "--backend", envoy_backend.name,
                                 *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=_die_with_parent)
        started.append(proc)
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://"), proc.stderr.read() if proc.stderr else ""
        return url

    yield run
    for proc in started:
        stop_process(proc, timeout=30)
        assert proc.returncode == 0


def test_pytest_passes_in_a_fresh_project(project: Path, envoy_backend: Any) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--meshfilter-backend",
                           envoy_backend.name], cwd=project, capture_output=True, text=True, timeout=600, env=env,
                          preexec_fn=_die_with_parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "4 passed" in done.stdout


def _ask(url: str, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    req = urllib.request.Request(url + "/")
    for k, v in headers:
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=20) as resp:  # noqa: S310 - loopback
        return [(k, v) for k, v in json.load(resp)["raw_headers"]]


def test_built_module_and_script_in_envoy_behave_like_the_reference(project: Path, envoy_run: Any) -> None:
    config = (project / "config.json").read_text()
    assert meshfilter("wasm", "build", "python", "filter.py", "-o", "canary.wasm", cwd=project).returncode == 0
    built = meshfilter("lua", "build", "filter.py", "--config", config, "-o", "canary.lua", cwd=project)
    assert built.returncode == 0, built.stderr
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
