from __future__ import annotations

import json

import pytest

from meshfilter.cli import main
from meshfilter.errors import UsageError
from meshfilter.oras.runtime_config import DEFAULT_ABI_VERSIONS, build_runtime_config, parse_runtime_config

SEED = {"type": "envoy_proxy",
        "abiVersions": ["v0-541b2c1155fffb15ccde92b8324f3e38f7339ba6", "v0-097b7f2e4cc1fb490cc1943d0d633655ac3c522f",
                        "v0-4689a30309abf31aee9ae36e73d34b1bb182685f", "v0.2.1"],
        "config": {"rootIds": ["propaganda_filter_root"]}}


def test_default_is_the_seed_document() -> None:
    rc = build_runtime_config(["propaganda_filter_root"])
    assert json.loads(rc.to_bytes()) == SEED
    assert rc.to_bytes() == build_runtime_config(["propaganda_filter_root"]).to_bytes()  # deterministic
    assert parse_runtime_config(rc.to_bytes()) == rc


def test_custom_abi_versions_and_roots() -> None:
    rc = build_runtime_config(["a", "b"], ["v0.2.1"])
    assert rc.to_dict() == {"type": "envoy_proxy", "abiVersions": ["v0.2.1"], "config": {"rootIds": ["a", "b"]}}


@pytest.mark.parametrize("doc,needle", [
    ("{", "not valid JSON"), ("[]", "JSON object"), ('{"abiVersions": "v0.2.1"}', "abiVersions"),
    ('{"config": {"rootIds": "x"}}', "rootIds"), ('{"type": 3}', "'type'"),
])
def test_parse_errors(doc: str, needle: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_runtime_config(doc, where="rc.json")
    assert needle in exc.value.line() and exc.value.line().startswith("rc.json: ")


def test_bad_abi_version_and_root_id() -> None:
    with pytest.raises(UsageError, match="ABI version"):
        build_runtime_config(["r"], ["v0,1"])
    with pytest.raises(UsageError, match="whitespace"):
        build_runtime_config(["a b"])


def test_cli_writes_file_atomically_with_defaults(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "runtime-config.json"
    assert main(["oras", "runtime-config", "--root-id", "propaganda_filter_root", "-o", str(out)]) == 0
    assert json.loads(out.read_text()) == SEED
    assert main(["oras", "runtime-config", "--root-id", "r", "--abi-version", "v0.2.1"]) == 0
    assert json.loads(capsys.readouterr().out)["abiVersions"] == ["v0.2.1"]
    assert list(DEFAULT_ABI_VERSIONS) == SEED["abiVersions"]
