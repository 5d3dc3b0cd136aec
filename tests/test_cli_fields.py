"""Library errors name fields; the CLI spells them as the flags of the command that ran."""

from __future__ import annotations

import argparse

import pytest

from meshfilter.cli import main
from meshfilter.cli._fields import flags_of, leaf_parser, speller
from meshfilter.errors import UsageError


def test_a_library_error_renders_its_fields_as_written() -> None:
    err = UsageError("`plain_http` was set", where="abi", hint="drop `plain_http`, keep `kubectl --x`")
    assert err.line() == "abi: `plain_http` was set (hint: drop `plain_http`, keep `kubectl --x`)"
    assert str(err) == err.line()


def test_spell_renames_where_and_backticked_fields_only() -> None:
    err = UsageError("`plain_http` was set for `registry`", where="abi", hint="drop `plain_http`")
    spell = {"abi": "--abi", "plain_http": "--plain-http"}.get
    assert err.line(spell) == "--abi: --plain-http was set for `registry` (hint: drop --plain-http)"
    # a where that is not a field of the command stays as it is
    assert UsageError("x", where="codegen").line(spell) == "codegen: x"


def _parser() -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="group")
    g = sub.add_parser("g")
    gsub = g.add_subparsers(dest="cmd")
    leaf = gsub.add_parser("leaf")
    leaf.add_argument("--root-id", "-r")
    leaf.add_argument("-o", "--output")
    leaf.add_argument("module", metavar="MODULE")
    leaf.set_defaults(field_flags={"plugin_config": "--config"})
    return p, p.parse_args(["g", "leaf", "m.wasm"])


def test_the_leaf_parser_and_its_flags() -> None:
    p, args = _parser()
    leaf = leaf_parser(p, args)
    assert flags_of(leaf) == {"root_id": "--root-id", "output": "--output", "module": "MODULE"}
    spell = speller(p, args)
    assert spell("root_id") == "--root-id"
    assert spell("plugin_config") == "--config"
    assert spell("abi") is None


def test_the_cli_prints_the_flag_for_a_library_field(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["wasm", "build", "propagate-header", "-o", str(tmp_path / "x.wasm"), "--root-id", "a\0b"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("meshfilter: error: --root-id: root id must be at most 256 bytes without NUL")


# -- flags are spelled in full -------------------------------------------------------------------------------

def test_an_abbreviated_flag_is_not_taken_for_a_longer_one(capsys: pytest.CaptureFixture[str]) -> None:
    # envoy-gateway has --env-from-host but no --env: argparse's prefix matching would take one for the other
    with pytest.raises(SystemExit) as exited:
        main(["deploy", "envoy-gateway", "--name", "a", "--image", "oci://r/x:1", "--target-ref", "Gateway/gw",
              "--env", "A=1"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1
    assert err == ("meshfilter deploy envoy-gateway: error: unrecognized arguments: --env A=1 "
                   "(see 'meshfilter deploy envoy-gateway --help')\n")


def test_an_unknown_flag_points_at_its_own_commands_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["wasm", "build", "propagate-header", "--out", "x.wasm"])
    assert exited.value.code == 2
    assert "(see 'meshfilter wasm build propagate-header --help')" in capsys.readouterr().err
