"""The error tree, the CLI's one-line errors, the pure bootstrap builders and atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from meshfilter import ConfigError, EnvoyError, MeshfilterError, UsageError
from meshfilter.cli import main
from meshfilter.cli._common import parse_kv
from meshfilter.envoy import bootstrap
from meshfilter.util.fs import atomic_write_bytes


def test_error_renders_one_line_with_where_and_hint() -> None:
    err = UsageError("bad thing\nsecond line", where="--flag", hint="do X")
    assert err.line() == "--flag: bad thing second line (hint: do X)"
    assert "\n" not in str(err)
    assert err.exit_code == 2 and ConfigError("x").exit_code == 2
    assert EnvoyError("x").exit_code == 1
    assert isinstance(ConfigError("x"), MeshfilterError)


def test_cli_usage_error_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice" in err[0]


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "meshfilter 0." in capsys.readouterr().out


def test_parse_kv_refuses_missing_equals_and_duplicates() -> None:
    assert parse_kv(["a=1", "b=x=y"], flag="--label") == {"a": "1", "b": "x=y"}
    with pytest.raises(UsageError, match="not key=value"):
        parse_kv(["novalue"], flag="--label")
    with pytest.raises(UsageError, match="given twice"):
        parse_kv(["a=1", "a=2"], flag="--label")


def test_filter_bootstrap_shapes() -> None:
    wasm = bootstrap.wasm_filter(code=bootstrap.wasm_code(path="/m.wasm"), configuration="{}", root_id="r")
    bs = bootstrap.filter_bootstrap([wasm], upstream=("127.0.0.1", 9000))
    hcm = bs["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    names = [f["name"] for f in hcm["http_filters"]]
    assert names == ["envoy.filters.http.wasm", "envoy.filters.http.router"]
    cfg = hcm["http_filters"][0]["typed_config"]["config"]
    assert cfg["root_id"] == "r" and cfg["vm_config"]["runtime"] == "envoy.wasm.runtime.v8"
    assert cfg["configuration"] == {"@type": bootstrap.STRING_VALUE, "value": "{}"}
    assert bs["static_resources"]["clusters"][0]["type"] == "STATIC"
    json.dumps(bs)  # serialisable
    direct = bootstrap.filter_bootstrap([])
    assert direct["static_resources"]["clusters"] == []
    assert "direct_response" in direct["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]


def test_wasm_code_variants() -> None:
    assert bootstrap.wasm_code(inline=b"\0asm") == {"local": {"inline_bytes": "AGFzbQ=="}}
    remote = bootstrap.wasm_code(remote_uri="http://x/m.wasm", sha256="ab", remote_cluster="c")
    assert remote["remote"]["sha256"] == "ab"
    with pytest.raises(ValueError):
        bootstrap.wasm_code(remote_uri="http://x/m.wasm")


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "f.bin"
    atomic_write_bytes(target, b"hello")
    assert target.read_bytes() == b"hello"

    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"hello"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]
    assert oct(os.stat(target).st_mode & 0o777) == "0o644"


def test_public_api_names_resolve_lazily() -> None:
    import subprocess
    import sys

    import meshfilter

    for name in meshfilter.__all__:
        assert getattr(meshfilter, name) is not None, name
    with pytest.raises(AttributeError):
        meshfilter.no_such_name  # noqa: B018
    # importing the package alone does not pull in the heavy optional parts
    out = subprocess.run([sys.executable, "-c", "import sys, meshfilter; "
                          "print(sorted(m for m in ('docker', 'grpc', 'wasmtime') if m in sys.modules))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_envoy_version_is_envoys_not_the_path() -> None:
    from meshfilter.envoy.binary import envoy_version, find_envoy

    assert envoy_version(str(find_envoy())) == "1.40.0"
