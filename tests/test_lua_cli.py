"""`meshfilter lua tag`: both forms, EnvoyFilter flags, --lua-only, -o, one-line errors with exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meshfilter.cli import main
from meshfilter.filters import tagging as t
from meshfilter.k8s.schema import schema_errors
from meshfilter.lua.codegen import compile_rules
from meshfilter.lua.inprocess import run_request

SEED_ARGS = ["lua", "tag", "--header", "user-agent", "--contains", "iPhone13",
             "--set", "x-asm-prefer-tag=version-gray", "--else", "x-asm-prefer-tag=version-base"]


def _doc(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:  # type: ignore[type-arg]
    assert main(argv) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_seed_short_form_renders_the_gateway_envoyfilter(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _doc(capsys, SEED_ARGS)
    assert schema_errors(doc) == []
    assert doc["metadata"]["namespace"] == "istio-system"
    assert doc["spec"]["workloadSelector"] == {"labels": {"istio": "ingressgateway"}}
    (patch,) = doc["spec"]["configPatches"]
    assert patch["applyTo"] == "HTTP_FILTER"
    assert patch["match"]["context"] == "GATEWAY"
    assert "proxy" not in patch["match"]
    assert patch["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"] == "envoy.filters.http.router"
    assert patch["patch"]["operation"] == "INSERT_BEFORE"
    value = patch["patch"]["value"]
    assert value["name"] == "envoy.lua"
    assert value["typed_config"]["@type"] == "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
    script = value["typed_config"]["default_source_code"]["inline_string"]
    assert run_request(script, [("user-agent", "iPhone13")]).headers[-1] == ("x-asm-prefer-tag", "version-gray")
    assert run_request(script, []).headers == [("x-asm-prefer-tag", "version-base")]


def test_flags_change_the_envoyfilter(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _doc(capsys, [*SEED_ARGS, "--context", "SIDECAR_INBOUND", "--selector", "app=hello",
                        "--selector", "version=v2", "--namespace", "demo", "--istio-version", "1.22",
                        "--priority", "-5", "--name", "my-tagging"])
    assert schema_errors(doc) == []
    assert doc["metadata"] == {"name": "my-tagging", "namespace": "demo"}
    assert doc["spec"]["workloadSelector"] == {"labels": {"app": "hello", "version": "v2"}}
    assert doc["spec"]["priority"] == -5
    match = doc["spec"]["configPatches"][0]["match"]
    assert match["context"] == "SIDECAR_INBOUND"
    assert match["proxy"] == {"proxyVersion": r"^1\.22.*"}


def test_rules_file_and_lua_only_and_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(t.to_dict(t.seed_ruleset())))
    out = tmp_path / "tag.lua"
    assert main(["lua", "tag", "--rules", str(rules), "--lua-only", "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert out.read_text() == compile_rules(t.seed_ruleset())
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically, nothing left behind
    assert main(["lua", "tag", "--rules", str(rules), "--lua-only"]) == 0
    assert capsys.readouterr().out == out.read_text()


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--header", "user agent", "--contains", "a", "--set", "x=1"], "is not a valid HTTP header name"),
    (["--header", "ua", "--contains", "a", "--set", "x=a\nb"], "contains CR, LF or NUL"),
    (["--header", "ua", "--contains", "a\x00", "--set", "x=1"], "contains CR, LF or NUL"),
    (["--header", "ua", "--contains", "a", "--set", "x"], "is not name=value"),
    (["--header", "ua", "--contains", "a", "--set", "x=1", "--else", "bad name=1"], "not a valid HTTP header name"),
    (["--header", "ua", "--contains", "a"], "--set is missing"),
    (["--contains", "a", "--set", "x=1"], "--header is missing"),
    (["--header", "ua", "--set", "x=1"], "no matcher given"),
    (["--header", "ua", "--lua-pattern", "[x", "--set", "x=1"], "not a valid Lua pattern"),
    ([*SEED_ARGS[2:], "--context", "gateway"], "enum values are upper case"),
    ([*SEED_ARGS[2:], "--selector", "novalue"], "is not key=value"),
    ([*SEED_ARGS[2:], "--namespace", "Bad_NS"], "is not a DNS-1123 label"),
    ([*SEED_ARGS[2:], "--istio-version", "latest"], "is not MAJOR.MINOR"),
    ([*SEED_ARGS[2:], "--priority", "99999999999"], "out of the int32 range"),
    (["--rules", "/nonexistent/rules.yaml"], "rules file not found"),
    (["--rules", "x.yaml", "--header", "ua"], "--rules cannot be combined"),
    ([], "no rule given"),
])
def test_bad_input_is_one_line_exit_2(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lua", "tag", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("meshfilter: error: ")
    assert fragment in err
    assert "Traceback" not in err


def test_bad_rules_file_names_the_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: ok, header: ua, present: true, set: {x: '1'}}\n"
                     "  - {name: gray, header: ua, contains: a, set: {'x y': '1'}}\n")
    assert main(["lua", "tag", "--rules", str(rules)]) == 2
    err = capsys.readouterr().err
    assert f"{rules}: rule 2 (gray): set header name 'x y'" in err
