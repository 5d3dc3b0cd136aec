"""`meshfilter envoy run|validate`: bad input is one line before any Envoy starts; Ctrl-C at any moment
is quiet (issue 13 items 1, 2, 4, 7, 10)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshfilter.cli import main
from meshfilter.util.proc import children_of
from meshfilter.wasm import build_propagate_header


@pytest.fixture
def no_child_started() -> Iterator[None]:
    """Asserts at teardown that the test started no child process (no Envoy, no echo, nothing)."""
    before = set(children_of(os.getpid()))
    yield
    assert set(children_of(os.getpid())) <= before


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture
def module(tmp_path: Path) -> Path:
    p = tmp_path / "propagate.wasm"
    p.write_bytes(build_propagate_header())
    return p


@pytest.fixture
def script(tmp_path: Path) -> Path:
    p = tmp_path / "tag.lua"
    p.write_text('function envoy_on_request(h) h:headers():replace("x-tag", "v1") end\n')
    return p


# ------------------------------------------------------------------------------ validate

def test_validate_a_wasm_module_says_it_is_not_a_bootstrap(module: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envoy", "validate", str(module)]) == 2
    line = _one_line(capsys)
    assert line.startswith("meshfilter: error: BOOTSTRAP: ") and "is a Wasm module, not a bootstrap" in line


def test_validate_a_binary_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blob = tmp_path / "envoy.yaml"
    blob.write_bytes(bytes(range(256)))
    assert main(["envoy", "validate", str(blob)]) == 2
    assert "is not a text file" in _one_line(capsys)


# ------------------------------------------------------------------------------ run: refused up front

@pytest.mark.parametrize(("extra", "needle"), [
    (["--config", "{}"], "--config: a Lua script takes no plugin settings"),
    (["--config-file", "cfg.json"], "--config-file: a Lua script takes no plugin settings"),
    (["--root-id", "r"], "--root-id: a Lua script takes no plugin settings"),
])
def test_run_lua_refuses_wasm_plugin_settings(extra: list[str], needle: str, script: Path,
                                              no_child_started: None,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envoy", "run", "--lua", str(script), *extra]) == 2
    assert needle in _one_line(capsys)


def test_run_lua_path_without_lua_is_refused(tmp_path: Path, module: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envoy", "run", "--wasm", str(module), "--lua-path", str(tmp_path)]) == 2
    assert "--lua-path: there is no Lua script" in _one_line(capsys)


def test_run_lua_path_must_be_a_folder(script: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envoy", "run", "--lua", str(script), "--lua-path", str(script)]) == 2
    assert f"--lua-path: {script} is not a folder" in _one_line(capsys)


@pytest.mark.parametrize("content", [b"function envoy_on_request(h) end\n", b"", b"\x7fELF\x02\x01\x01"])
def test_run_checks_the_wasm_magic_before_starting_envoy(content: bytes, tmp_path: Path, no_child_started: None,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "filter.wasm"
    fake.write_bytes(content)
    assert main(["envoy", "run", "--wasm", str(fake)]) == 2
    line = _one_line(capsys)
    assert line.startswith("meshfilter: error: --wasm: ") and "is not a Wasm module" in line


def test_run_missing_files_are_one_line(tmp_path: Path, module: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envoy", "run", "--wasm", str(tmp_path / "none.wasm")]) == 2
    assert "--wasm: no such file" in _one_line(capsys)
    assert main(["envoy", "run", "--wasm", str(module), "--config-file", str(tmp_path / "none.json")]) == 2
    assert "--config-file: no such file" in _one_line(capsys)


def test_run_on_a_taken_port_says_so_before_starting(script: Path, no_child_started: None,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        assert main(["envoy", "run", "--lua", str(script), "--port", str(port)]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"meshfilter: error: --port: port {port} is taken")


def test_watch_with_bridge_networking_is_refused(script: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envoy", "run", "--lua", str(script), "--watch", "--backend", "container",
                 "--network", "bridge"]) == 2
    assert "--network: --watch hands the listener over" in _one_line(capsys)


# ------------------------------------------------------------------------------ Ctrl-C while importing

_INTERRUPT_DURING_IMPORTS = textwrap.dedent("""
    import builtins, os, signal, sys
    real_import = builtins.__import__
    fired = []

    def interrupting_import(name, *args, **kwargs):
        # the moment of the report: the command modules are being imported (meshfilter.envoy by cli.envoy)
        if name.startswith("meshfilter.envoy") and not fired:
            fired.append(name)
            os.kill(os.getpid(), signal.SIG)
        return real_import(name, *args, **kwargs)

    builtins.__import__ = interrupting_import
    from meshfilter.cli import main
    sys.exit(main(["envoy", "run", "--lua", sys.argv[1]]))
""")


@pytest.mark.parametrize(("sig", "rc"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_the_command_modules_import_is_quiet(sig: signal.Signals, rc: int, script: Path) -> None:
    code = _INTERRUPT_DURING_IMPORTS.replace("signal.SIG)", f"signal.{sig.name})")
    proc = subprocess.run([sys.executable, "-c", code, str(script)], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""
    assert proc.returncode == rc


def test_exit_code_convention_is_documented() -> None:
    import meshfilter.cli

    assert "130 for SIGINT, 143 for SIGTERM" in (meshfilter.cli.__doc__ or "")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "130" in readme and "143" in readme
