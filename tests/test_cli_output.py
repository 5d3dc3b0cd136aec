"""`-o` for every command that writes a file: a path that cannot be written is one line, exit 2, no
traceback, and a missing folder is refused, not created behind the user's back (issue 13 items 1, 7)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from meshfilter.cli import main
from meshfilter.examples.landing import descriptor_set
from meshfilter.util.fs import atomic_write_bytes

TAG = ["--header", "user-agent", "--contains", "iPhone13", "--set", "x-asm-prefer-tag=version-gray",
       "--else", "x-asm-prefer-tag=version-base"]


@pytest.fixture
def commands(tmp_path: Path) -> dict[str, list[str]]:
    """argv of each writing command, ``-o`` to be appended."""
    desc = tmp_path / "landing.pb"
    desc.write_bytes(descriptor_set())
    return {
        "wasm build propagate-header": ["wasm", "build", "propagate-header"],
        "wasm build tag-rules": ["wasm", "build", "tag-rules", *TAG],
        "lua tag": ["lua", "tag", *TAG],
        "transcoder": ["transcoder", "--version", "1.7", "--service_port", "9996", "--service_name", "grpc-svc",
                       "--proto_pkg", "org.feuyeux.grpc", "--proto_svc", "LandingService", "--descriptor",
                       str(desc)],
        "oras runtime-config": ["oras", "runtime-config", "--root-id", "propaganda_filter_root"],
        # refused before the pull: no registry needed (the address answers nothing)
        "oras pull": ["oras", "pull", "127.0.0.1:9/asm_wasm/x:1", "--plain-http"],
    }


NAMES = ["wasm build propagate-header", "wasm build tag-rules", "lua tag", "transcoder", "oras runtime-config",
         "oras pull"]


@pytest.mark.parametrize("name", NAMES)
def test_output_naming_a_directory_is_one_line(name: str, commands: dict[str, list[str]], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*commands[name], "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("meshfilter: error: --output: ") and f"{tmp_path} is a directory" in err[0]


@pytest.mark.parametrize("name", NAMES)
def test_output_in_a_missing_folder_is_refused_not_created(name: str, commands: dict[str, list[str]],
                                                           tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "no" / "such" / "dir" / "x.out"
    assert main([*commands[name], "-o", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"the folder {target.parent} does not exist" in err[0] and "mkdir -p" in err[0]
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("name", [n for n in NAMES if n != "oras pull"])
def test_output_under_proc_is_one_line(name: str, commands: dict[str, list[str]],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*commands[name], "-o", "/proc/x.wasm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("meshfilter: error: --output: cannot write /proc/x.wasm: ")


def test_real_command_line_prints_no_traceback(tmp_path: Path) -> None:
    for target in (str(tmp_path), "/proc/x.wasm"):
        proc = subprocess.run([sys.executable, "-m", "meshfilter", "wasm", "build", "propagate-header", "-o", target],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_output_into_an_existing_folder_still_works(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.wasm"
    assert main(["wasm", "build", "propagate-header", "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\0asm"
    assert [p.name for p in tmp_path.iterdir()] == ["p.wasm"]  # no temp file left behind


def test_library_writer_names_the_field_and_keeps_creating_parents(tmp_path: Path) -> None:
    from meshfilter.errors import UsageError

    with pytest.raises(UsageError) as info:
        atomic_write_bytes(tmp_path, b"x", field="module")
    assert info.value.where == "module" and "is a directory" in info.value.what
    deep = tmp_path / "a" / "b" / "c.bin"
    atomic_write_bytes(deep, b"x")  # library callers (OCI layouts, deploy -o DIR) create folders
    assert deep.read_bytes() == b"x"
    with pytest.raises(UsageError) as info:
        atomic_write_bytes(tmp_path / "d" / "e.bin", b"x", parents=False)
    assert "does not exist" in info.value.what and not (tmp_path / "d").exists()



def test_deploy_single_file_output_in_a_missing_folder_says_it_creates_it(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """deploy writes folders of resources (``-o DIR``), so for ``-o DIR/FILE.yaml`` it creates DIR too, but
    says so on stderr."""
    target = tmp_path / "no" / "such" / "filter.yaml"
    argv = ["deploy", "wasmplugin", "--name", "f", "--image", "oci://registry.example.com/f:1",
            "--root-id", "propaganda_filter_root", "--label", "app=a",
            "--parameters", '{"head_tag_name": "route-v", "head_tag_value": "hello2v2"}', "-o", str(target)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"created folder {target.parent}" in err and f"wrote {target}" in err
    assert target.is_file()
