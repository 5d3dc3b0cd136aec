"""`meshfilter envoy run` as a user runs it (issue 13): the module's own refusal line, children that
die with the CLI even on SIGKILL, leftovers reaped by the next run, the SIGINT/SIGTERM exit codes,
Lua modules (--lua-path), and the dev loop (--watch: hot restart on the same port)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshfilter.util.fs import owned_tempdirs
from meshfilter.util.ports import port_is_free
from meshfilter.util.proc import children_of, pid_alive
from meshfilter.wasm import build_propagate_header

pytestmark = pytest.mark.envoy

LUA_REQUIRE = Path(__file__).resolve().parents[1] / "tests" / "data" / "lua-require"
CONFIG = {"head_tag_name": "route-v", "head_tag_value": "hello2v2"}


@pytest.fixture
def backend_name(envoy_backend: Any) -> str:
    return str(envoy_backend.name)


@pytest.fixture
def module(tmp_path: Path) -> Path:
    p = tmp_path / "propagate_header.wasm"
    p.write_bytes(build_propagate_header())
    return p


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback
        return resp.status, {"body": json.load(resp), "headers": dict(resp.headers)}


class Cli:
    """``python -m meshfilter envoy run ...`` in the background; stderr lines collected on a thread."""

    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "meshfilter", "envoy", "run", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                                     start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))

    def url(self) -> str:
        assert self.proc.stdout is not None
        url = self.proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), self.drain()
        return url

    def wait_line(self, needle: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no stderr line with {needle!r}; seen: {self.seen}")

    def drain(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "\n".join(self.seen)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture
def clis() -> Iterator[list[Cli]]:
    started: list[Cli] = []
    yield started
    for c in started:
        c.stop()


# ------------------------------------------------------------------------------ item 2: refusal lines

@pytest.mark.parametrize(("extra", "says"), [
    (["--config", "{}"], "propagate-header: missing key head_tag_name"),
    ([], "propagate-header: configuration is not valid JSON"),
    (["--config", json.dumps(CONFIG), "--root-id", "not_the_root"],
     "propagate-header: plugin root id does not match the module's root id propaganda_filter_root"),
    (["--config", '{"head_tag_name": "route v", "head_tag_value": "x"}', "--log-level", "info"],
     "propagate-header: head_tag_name is not a valid HTTP header name"),
])
def test_run_prints_the_modules_own_refusal_in_one_line(extra: list[str], says: str, module: Path,
                                                         backend_name: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "meshfilter", "envoy", "run", "--wasm", str(module),
                           "--backend", backend_name, *extra], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stdout == ""
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert err[0].startswith(f"meshfilter: error: --wasm: Envoy refused the module {module.name}: {says} (hint: ")
    assert err[0].endswith(")")  # not cut off


def test_run_prints_luas_refusal_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.lua"
    bad.write_text("this is not lua(\n")
    proc = subprocess.run([sys.executable, "-m", "meshfilter", "envoy", "run", "--lua", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("meshfilter: error: --lua: Envoy refused the script bad.lua: script load error: ")
    assert "'=' expected near 'is'" in line


# ------------------------------------------------------------------------------ item 3: orphans

def _wait(cond: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return bool(cond())


def _next_run(backend: str = "process") -> None:
    """What "the next run" does: one `envoy run` that starts and is stopped."""
    cli = Cli("--lua", str(LUA_REQUIRE / "main.lua"), "--lua-path", str(LUA_REQUIRE), "--backend", backend)
    try:
        cli.url()
        os.kill(cli.proc.pid, signal.SIGTERM)
        assert cli.proc.wait(timeout=60) == 143
    finally:
        cli.stop()


def test_sigkill_of_envoy_run_takes_its_envoy_along_and_the_next_run_reaps_its_temp_dir(
        clis: list[Cli]) -> None:
    cli = Cli("--lua", str(LUA_REQUIRE / "main.lua"), "--lua-path", str(LUA_REQUIRE))
    clis.append(cli)
    url = cli.url()
    assert _get(url + "/")[0] == 200
    envoys = children_of(cli.proc.pid)
    assert len(envoys) == 1
    dirs = owned_tempdirs(cli.proc.pid)
    assert dirs, "envoy run's temp dir carries its owner"
    port = int(url.rsplit(":", 1)[1])
    os.kill(cli.proc.pid, signal.SIGKILL)
    cli.proc.wait(timeout=30)
    assert _wait(lambda: not pid_alive(envoys[0])), f"envoy {envoys[0]} outlived the SIGKILLed CLI"
    assert _wait(lambda: port_is_free(port))
    assert all(d.exists() for d in dirs)  # a SIGKILLed process cleans nothing up...
    _next_run()
    assert not any(d.exists() for d in dirs)  # ...the next run does


@pytest.fixture
def engine() -> Iterator[Any]:
    """A Docker Engine API client; skips only where no engine can answer (a failure under CI)."""
    from meshfilter.envoy.engine import engine_client, engine_unavailable_reason

    reason = engine_unavailable_reason()
    if reason:
        pytest.skip(f"no container engine: {reason}")
    client = engine_client()
    yield client
    client.close()


def test_sigkill_of_envoy_run_on_the_container_backend_is_reaped_by_the_next_run(engine: Any,
                                                                                 clis: list[Cli]) -> None:
    from meshfilter.envoy.container import managed_containers

    cli = Cli("--backend", "container")
    clis.append(cli)
    cli.url()
    assert len(managed_containers(engine, owner_pid=cli.proc.pid)) == 1
    dirs = owned_tempdirs(cli.proc.pid)
    os.kill(cli.proc.pid, signal.SIGKILL)
    cli.proc.wait(timeout=30)
    assert managed_containers(engine, owner_pid=cli.proc.pid)  # nobody could remove it
    _next_run("container")
    assert not managed_containers(engine, owner_pid=cli.proc.pid)
    assert dirs and not any(d.exists() for d in dirs)


# ------------------------------------------------------------------------------ item 7: exit codes

@pytest.mark.parametrize(("sig", "rc"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_run_exit_status_is_128_plus_the_signal(sig: signal.Signals, rc: int, clis: list[Cli]) -> None:
    cli = Cli("--lua", str(LUA_REQUIRE / "main.lua"), "--lua-path", str(LUA_REQUIRE))
    clis.append(cli)
    cli.url()
    envoys = children_of(cli.proc.pid)
    os.kill(cli.proc.pid, sig)
    assert cli.proc.wait(timeout=60) == rc
    assert "Traceback" not in cli.drain()
    assert all(not pid_alive(p) for p in envoys)


# ------------------------------------------------------------------------------ item 10: Lua modules

def test_lua_script_requires_its_own_module_with_lua_path(backend_name: str, clis: list[Cli]) -> None:
    """The equivalent of Envoy's examples/lua: main.lua does require("lib.mylibrary")."""
    cli = Cli("--lua", str(LUA_REQUIRE / "main.lua"), "--lua-path", str(LUA_REQUIRE), "--backend", backend_name)
    clis.append(cli)
    status, answer = _get(cli.url() + "/")
    assert status == 200
    assert answer["body"]["headers"]["foo"] == "bar"  # set on the request by the module's function
    assert answer["headers"]["x-lua-module"] == "lib.mylibrary"


def test_lua_script_without_lua_path_says_the_module_is_not_found(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "meshfilter", "envoy", "run", "--lua", str(LUA_REQUIRE / "main.lua")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "--lua: Envoy refused the script main.lua: " in line and "module 'lib.mylibrary' not found" in line
    assert "--lua-path" in line  # the hint names the way out


# ------------------------------------------------------------------------------ item 8: --watch

class Hammer:
    """Requests in a loop on a thread; every answer (its route-v value) or failure is recorded."""

    def __init__(self, url: str, header: str = "route-v") -> None:
        self.url, self.header = url, header
        self.answers: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                _, answer = _get(self.url + "/", {"route-v": "client"}, timeout=10)
                self.answers.append(answer["body"]["headers"].get(self.header, "(none)"))
            except (OSError, urllib.error.URLError, ValueError) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.005)

    def wait_for(self, value: str, timeout: float = 30) -> None:
        assert _wait(lambda: bool(self.answers) and self.answers[-1] == value, timeout), self.answers[-5:]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_watch_reloads_on_the_same_port_without_refusing_a_request(module: Path, tmp_path: Path,
                                                                    backend_name: str, clis: list[Cli]) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"head_tag_name": "route-v", "head_tag_value": "one"}))
    cli = Cli("--wasm", str(module), "--config-file", str(config), "--watch", "--backend", backend_name)
    clis.append(cli)
    url = cli.url()
    cli.wait_line(f"watching {module}, {config}")
    hammer = Hammer(url)
    try:
        hammer.wait_for("one")
        # 1. a new configuration: accepted, served on the same URL
        config.write_text(json.dumps({"head_tag_name": "route-v", "head_tag_value": "two"}))
        assert cli.wait_line("reload: ").startswith("reload: config.json changed; Envoy accepted it (epoch 1")
        hammer.wait_for("two")
        # 2. one the module refuses: the old version keeps serving, and the module's own line is printed
        config.write_text(json.dumps({"head_tag_name": "route v", "head_tag_value": "three"}))
        assert cli.wait_line("reload: ") == (
            "reload: config.json changed; Envoy refused it, still serving the previous version: "
            "propagate-header: head_tag_name is not a valid HTTP header name")
        n = len(hammer.answers)
        assert _wait(lambda: len(hammer.answers) > n + 20)
        assert set(hammer.answers[n:]) == {"two"}
        # 3. the module replaced by something that is not Wasm: not even offered to Envoy
        good = module.read_bytes()
        module.write_bytes(b"not wasm")
        line = cli.wait_line("reload: ")
        assert line.startswith(f"reload: {module.name} changed; not loaded, still serving the previous version: ")
        assert "is not a Wasm module" in line
        # 4. module and configuration fixed: accepted
        module.write_bytes(good)
        config.write_text(json.dumps({"head_tag_name": "route-v", "head_tag_value": "four"}))
        assert "Envoy accepted it (epoch 2" in cli.wait_line("reload: ")
        hammer.wait_for("four")
    finally:
        hammer.stop()
    assert hammer.failures == []
    seen = [v for i, v in enumerate(hammer.answers) if i == 0 or hammer.answers[i - 1] != v]
    assert seen == ["one", "two", "four"]
    os.kill(cli.proc.pid, signal.SIGTERM)
    assert cli.proc.wait(timeout=60) == 143


def test_watch_reloads_a_lua_module_under_lua_path(tmp_path: Path, clis: list[Cli]) -> None:
    import shutil

    tree = tmp_path / "lua"
    shutil.copytree(LUA_REQUIRE, tree)
    cli = Cli("--lua", str(tree / "main.lua"), "--lua-path", str(tree), "--watch")
    clis.append(cli)
    url = cli.url()
    cli.wait_line("watching ")
    hammer = Hammer(url, header="foo")
    try:
        hammer.wait_for("bar")
        lib = tree / "lib" / "mylibrary.lua"
        lib.write_text(lib.read_text().replace('return "bar"', 'return "baz"'))
        assert cli.wait_line("reload: ").startswith("reload: mylibrary.lua changed; Envoy accepted it (epoch 1")
        hammer.wait_for("baz")
        lib.write_text("this is not lua(\n")
        line = cli.wait_line("reload: ")
        assert line.startswith("reload: mylibrary.lua changed; Envoy refused it, still serving the previous "
                               "version: ")
        assert "mylibrary.lua:1: '=' expected near 'is'" in line  # the module's own error, not cut
        n = len(hammer.answers)
        assert _wait(lambda: len(hammer.answers) > n + 20)
        assert set(hammer.answers[n:]) == {"baz"}
    finally:
        hammer.stop()
    assert hammer.failures == []
    envoys = children_of(cli.proc.pid)
    os.kill(cli.proc.pid, signal.SIGINT)
    assert cli.proc.wait(timeout=60) == 130
    assert _wait(lambda: all(not pid_alive(p) for p in envoys))
