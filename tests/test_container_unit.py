"""Unit tests (no engine, no Envoy run) for the container backend's pure parts: ELF dependencies,
image context, bootstrap mounts, bridge rewrite, owner labels."""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
from itertools import count
from pathlib import Path

import pytest

from meshfilter.envoy import bootstrap as b
from meshfilter.envoy.binary import find_envoy
from meshfilter.envoy.container import (
    LABEL_PID,
    LABEL_PID_START,
    owner_alive,
    owner_labels,
    publish_bootstrap,
    referenced_paths,
)
from meshfilter.envoy.elfdeps import read_elf, resolve
from meshfilter.envoy.image import ENVOY_IN_IMAGE, context_members, dockerfile, version_of, write_context
from meshfilter.errors import ContainerError


def _ldd(path: str) -> set[str]:
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
    names = set()
    for line in out.splitlines():
        m = re.match(r"\s*(\S+)(?:\s+=>\s+(\S+))?", line)
        if m and "vdso" not in m.group(1):
            names.add(Path(m.group(1)).name)
    return names


@pytest.mark.parametrize("binary", [str(find_envoy()), "/usr/bin/env", "/usr/bin/curl"])
def test_elf_closure_matches_ldd(binary: str) -> None:
    closure = resolve(binary)
    ours = {lib.soname for lib in closure.libraries}
    if closure.interpreter:
        ours.add(closure.interpreter.soname)
    assert ours == _ldd(binary)
    for lib in closure.libraries:
        assert lib.real.is_file() and read_elf(lib.real).machine == closure.binary.machine


def test_envoy_elf_facts() -> None:
    info = read_elf(find_envoy())
    assert info.interpreter and info.interpreter.startswith("/lib")
    assert "libc.so.6" in info.needed
    assert info.build_id and len(info.build_id) == 40
    out = subprocess.run([str(find_envoy()), "--version"], capture_output=True, text=True).stdout
    assert info.build_id in out  # Envoy prints its build SHA; for the wheel it is the GNU build ID


def test_read_elf_rejects_non_elf(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_text("#!/bin/sh\n")
    with pytest.raises(ContainerError, match="not an ELF file"):
        read_elf(p)


def test_version_of_reads_envoy_version_not_the_path() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version_of(find_envoy()))


def test_build_context_has_dockerfile_binary_and_every_library() -> None:
    envoy = Path("/usr/bin/curl")  # same builder as for Envoy, on a smaller binary with more libraries
    closure = resolve(envoy)
    df = dockerfile(closure)
    assert df.startswith("FROM scratch\n") and f'ENTRYPOINT ["{ENVOY_IN_IMAGE}"]' in df
    assert "LD_LIBRARY_PATH=" in df
    buf = io.BytesIO()
    write_context(buf, envoy, closure)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        names = set(tar.getnames())
        assert "Dockerfile" in names and "rootfs/tmp" in names
        for dest, _src in context_members(envoy, closure):
            member = tar.getmember("rootfs" + dest)
            assert member.isfile() and member.mode & 0o111 and member.uid == 0
    assert "rootfs" + closure.binary.interpreter in names if closure.binary.interpreter else True


def test_referenced_paths_finds_files_and_access_log_dirs(tmp_path: Path) -> None:
    wasm = tmp_path / "f.wasm"
    wasm.write_bytes(b"\0asm")
    desc = tmp_path / "d.pb"
    desc.write_bytes(b"x")
    logdir = tmp_path / "logs"
    bs = {
        "a": {"vm_config": {"code": {"local": {"filename": str(wasm)}}}},
        "t": [{"proto_descriptor": str(desc)}],
        "route": {"prefix": "/"},  # a directory-like string: not mounted
        "missing": {"filename": str(tmp_path / "absent.wasm")},
        "log": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                "path": str(logdir / "access.log")},
        "stdout": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                   "path": "/dev/stdout"},
        "dup": {"filename": str(wasm)},
    }
    files, dirs = referenced_paths(bs)
    assert files == [wasm, desc]
    assert dirs == [logdir]


def test_publish_bootstrap_rewrites_to_any_address_with_fixed_ports() -> None:
    bs = b.bootstrap(listeners=[b.http_listener("main", 0, routes=[b.direct_response_route()]),
                                b.http_listener("fixed", 18080, routes=[b.direct_response_route()])])
    out, ports, admin = publish_bootstrap(bs, iter(count(30000)))
    assert ports == {"main": 30000, "fixed": 18080} and admin == 30001
    addrs = [ls["address"]["socket_address"] for ls in out["static_resources"]["listeners"]]
    assert all(a["address"] == "0.0.0.0" for a in addrs)
    assert out["admin"]["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 30001}
    # pure: the input is untouched
    assert bs["static_resources"]["listeners"][0]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_owner_labels_and_liveness() -> None:
    labels = owner_labels("x")
    assert labels[LABEL_PID] == str(os.getpid()) and owner_alive(labels)
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert not owner_alive(owner_labels("x", pid=proc.pid))
    # PID reused by another process: start time differs -> not the owner
    assert not owner_alive({**labels, LABEL_PID_START: "1"})
    assert not owner_alive({LABEL_PID: "not-a-pid"})
