"""The oras CLI offline: layout output, input errors (one line, exit 2), runtime-config, progress bar."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from meshfilter.cli import main
from meshfilter.oras.layout import read_layout
from meshfilter.oras.progress import TtyProgress, tty_progress

MOD = b"\0asm\x01\0\0\0" + b"cli" * 100


@pytest.fixture
def mod(tmp_path: Path) -> Path:
    p = tmp_path / "propagate_header.wasm"
    p.write_bytes(MOD)
    return p


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_push_to_oci_layout_offline(tmp_path: Path, mod: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = "localhost:5000/asm_wasm/propagate_header:0.0.1"
    rc, out, err = run(["oras", "push", ref, str(mod), "--root-id", "propaganda_filter_root",
                        "--annotation", "org.example/team=mesh", "--oci-layout", str(tmp_path / "oci")], capsys)
    assert rc == 0, err
    art = read_layout(tmp_path / "oci", "0.0.1")
    assert out == f"{ref}@{art.digest}\n"
    assert art.format == "asm" and art.manifest["annotations"] == {"org.example/team": "mesh"}
    assert art.manifest["layers"][0]["annotations"] == {"org.opencontainers.image.title": "propagate_header.wasm"}


def test_runtime_config_file_is_used_verbatim(tmp_path: Path, mod: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc_file = tmp_path / "runtime-config.json"
    rc_file.write_text('{"type": "envoy_proxy", "abiVersions": ["v0.2.1"], "config": {"rootIds": ["x"]}}')
    assert run(["oras", "push", "localhost:5000/a:1", str(mod), "--runtime-config", str(rc_file),
                "--oci-layout", str(tmp_path / "oci")], capsys)[0] == 0
    art = read_layout(tmp_path / "oci", "1")
    assert art.blobs[art.manifest["config"]["digest"]] == rc_file.read_bytes()


@pytest.mark.parametrize("extra,needle", [
    (["--format", "asm"], "needs a runtime config"),
    (["--root-id", "r", "--runtime-config", "x.json"], "cannot be combined"),
    (["--abi-version", "v0.2.1"], "--abi-version needs --root-id"),
    (["--root-id", "r", "--annotation", "novalue"], "is not key=value"),
    (["--format", "docker", "--annotation", "a=b"], "cannot carry annotations"),
    (["--runtime-config", "/nonexistent/rc.json"], "cannot read file"),
])
def test_push_usage_errors(tmp_path: Path, mod: Path, extra: list[str], needle: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(["oras", "push", "localhost:5000/a:1", str(mod), *extra, "--oci-layout", str(tmp_path)], capsys)
    assert rc == 2 and out == "" and needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_not_wasm_module_bad_ref_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    txt = tmp_path / "x.wasm"
    txt.write_text("hello")
    rc, _, err = run(["oras", "push", "localhost:5000/a:1", str(txt), "--root-id", "r"], capsys)
    assert rc == 2 and "not a Wasm module" in err and str(txt) in err
    rc, _, err = run(["oras", "push", "localhost:5000/A:1", str(txt), "--root-id", "r"], capsys)
    assert rc == 2 and "REF: repository component 'A'" in err
    rc, _, err = run(["oras", "push", "localhost:5000/a:1", str(tmp_path / "none.wasm"), "--root-id", "r"], capsys)
    assert rc == 2 and "cannot read file" in err
    rc, _, err = run(["oras", "pull", "localhost:5000/a:1", "-o", str(tmp_path / "o.wasm"), "--ca-file",
                      str(tmp_path / "no-ca.pem")], capsys)
    assert rc == 2 and "CA file not found" in err
    rc, _, err = run(["oras", "inspect", "localhost:5000/a:1", "--plain-http", "--insecure"], capsys)
    assert rc == 2 and "cannot be combined" in err


def test_runtime_config_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["oras", "runtime-config", "--root-id", "a", "--root-id", "b"], capsys)
    assert rc == 0 and json.loads(out)["config"]["rootIds"] == ["a", "b"]


def test_progress_bar_only_on_a_tty() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert tty_progress(io.StringIO()) is None
    bar = tty_progress(Tty())
    assert isinstance(bar, TtyProgress)
    bar.start("wasm", 2_000_000)
    bar.advance(1_000_000)
    bar.done()
    text = bar.stream.getvalue()  # type: ignore[attr-defined]
    assert "100%" in text and "2.0/2.0 MB" in text and text.endswith("\n")
