"""``meshfilter deploy``: every input check is one line on stderr and exit 2; output modes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from meshfilter.cli import main
from meshfilter.k8s.output import load_yaml

SEED = ["deploy", "asm", "--name", "hello1-propagate-header", "--label", "app=hello1-deploy-v2",
        "--label", "version=v2", "--parameters", '{"head_tag_name": "route-v", "head_tag_value": "hello2v2"}',
        "--image", "wasm-repo-registry.cn-beijing.cr.aliyuncs.com/asm_wasm/propagate_header:0.0.1",
        "--root-id", "propaganda_filter_root"]
WP = ["deploy", "wasmplugin", "--name", "p", "--label", "app=a", "--image", "registry.example.com/f/p:1"]
MODULE = Path(__file__).parent / "golden" / "deploy" / "envoyfilter-inbound" / "filter.wasm"
EF = ["deploy", "envoyfilter", "--name", "f", "--module", str(MODULE), "--root-id", "r"]
SHA = "a" * 64


def _replace(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


def _run_err(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


BAD_INPUTS = [
    (_replace(SEED, "--name", "Hello_1"), "--name: 'Hello_1' is not a DNS-1123 name"),
    (_replace(SEED, "--name", "a" * 254), "is not a DNS-1123 name"),
    ([*SEED, "--namespace", "Default"], "--namespace: 'Default' is not a DNS-1123 label"),
    ([*SEED, "--patch-context", "OUTBOUND"], "--patch-context: 'OUTBOUND' is not a patch context"),
    ([*SEED, "--patch-context", "gateway"], "enum values are upper case: --patch-context GATEWAY"),
    (_replace(SEED, "--label", "app=hello1=x"), "label value 'hello1=x' of 'app' is not a valid Kubernetes"),
    (_replace(SEED, "--label", "_app=x"), "label key '_app' is not a valid Kubernetes label name"),
    (_replace(SEED, "--label", "Bad_Prefix/app=x"), "label key 'Bad_Prefix/app' has an invalid prefix"),
    (_replace(SEED, "--label", "app"), "--label: 'app' is not key=value"),
    (_replace(SEED, "--label", "version=v1"), "--label: label key 'version' is given twice"),
    (_replace(SEED, "--label", f"app={'x' * 64}"), "is not a valid Kubernetes label value"),
    ([a for a in SEED if a not in ("--label", "app=hello1-deploy-v2", "version=v2")],
     "--label: at least one label is required"),
    (_replace(SEED, "--parameters", "{not json"), "--parameters: configuration is not valid JSON"),
    (_replace(SEED, "--parameters", '["x"]'), "--parameters: configuration is not a JSON object"),
    (_replace(SEED, "--parameters", '{"head_tag_name": "route-v"}'), "--parameters: missing key head_tag_value"),
    (_replace(SEED, "--parameters", '{"head_tag_name": "a b", "head_tag_value": "v"}'),
     "--parameters: head_tag_name is not a valid HTTP header name"),
    (_replace(SEED, "--image", "Registry.example.com/UPPER:1"), "--image:"),
    (_replace(SEED, "--image", "r.example.com/x:bad tag"), "contains whitespace"),
    ([*SEED, "--id", "Not Valid"], "--id: 'Not Valid' is not a DNS-1123 name"),
    ([*SEED, "--pull-secret", "UPPER"], "--pull-secret: 'UPPER' is not a DNS-1123 name"),
    ([*SEED, "--workload-kind", "deployment"], "--workload-kind: 'deployment' is not a workload kind"),
    (_replace(SEED, "--root-id", "has space"), "--root-id: 'has space' is not a valid root id"),
    # WasmPlugin
    ([*WP, "--parameters", "[1]"], "--parameters: must be a JSON object, not list"),
    ([*WP, "--parameters", "{"], "--parameters: not valid JSON"),
    ([*WP, "--filter", "propagate-header", "--parameters", "{}"], "--parameters: missing key head_tag_name"),
    ([*WP, "--root-id", "propaganda_filter_root"], "--parameters: propagate-header needs its parameters"),
    ([*WP, "--sha256", "xyz"], "--sha256: 'xyz' is not a SHA-256 hex digest"),
    ([*WP, "--priority", str(2**31)], "--priority: 2147483648 is out of the int32 range"),
    ([*WP, "--patch-context", "WAYPOINT"], "--patch-context: 'WAYPOINT' is not a patch context"),
    ([*WP, "--with-pull-secret"], "--with-pull-secret needs --pull-secret NAME"),
    (_replace(WP, "--image", "https://x.example.com/f.wasm") + ["--pin"], "--pin and --with-pull-secret need an OCI"),
    (_replace(WP, "--image", "oci://x.example.com/f@sha256:123"), "--image: digest 'sha256:123'"),
    # EnvoyFilter
    ([*EF, "--istio-version", "1.x"], "--istio-version: Istio version '1.x' is not MAJOR.MINOR"),
    ([*EF, "--patch-context", "BOGUS"], "--patch-context: 'BOGUS' is not a patch context"),
    ([*EF, "--sha256", SHA], "--sha256: --sha256 and --remote-cluster go with --url"),
    (_replace(EF, "--module", "/nonexistent.wasm"), "--module: cannot read /nonexistent.wasm"),
    (_replace(EF, "--module", __file__), "is not a Wasm module"),
    (["deploy", "envoyfilter", "--name", "f", "--root-id", "r", "--url", "https://x.example.com/f.wasm"],
     "--url: --url needs --sha256"),
    (["deploy", "envoyfilter", "--name", "f", "--root-id", "r", "--url", "ftp://x/f.wasm", "--sha256", SHA],
     "--url: 'ftp://x/f.wasm' is not an http(s) URL"),
    ([*EF, "--label", "a=b", "--label", "a=c"], "--label: label key 'a' is given twice"),
    ([*EF, "--priority", str(-(2**31) - 1)], "out of the int32 range"),
]


@pytest.mark.parametrize(("args", "expected"), BAD_INPUTS, ids=[e for _, e in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2(args: list[str], expected: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run_err(args, capsys)
    assert rc == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("meshfilter: error: "), err
    assert expected in lines[0]
    assert "(hint:" in lines[0] or "--sha256 and" in lines[0] or "--module-path" in lines[0]


def test_missing_required_flag_is_argparse_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["deploy", "asm", "--name", "x"])
    assert info.value.code == 2
    assert "required" in capsys.readouterr().err


def test_propagate_checks_only_for_its_root_id(capsys: pytest.CaptureFixture[str]) -> None:
    # another root id: any JSON object is fine
    assert main([*_replace(SEED, "--root-id", "my_root"), "--parameters", '{"x": 1}']) == 0
    # explicit --filter generic turns the propagate check off even for its root id
    assert main([*_replace(SEED, "--parameters", '{"x": 1}'), "--filter", "generic"]) == 0
    capsys.readouterr()


def test_output_json_list_and_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auths": {"wasm-repo-registry.cn-beijing.cr.aliyuncs.com": {"auth": "dTpw"}}}))
    assert main([*SEED, "--with-pull-secret", "--docker-config", str(cfg), "-o", "json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["kind"] == "List" and [i["kind"] for i in obj["items"]] == ["ASMFilterDeployment", "Secret"]

    out = tmp_path / "out"
    assert main([*SEED, "--with-pull-secret", "--docker-config", str(cfg), "-o", str(out)]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["asmfilterdeployment-hello1-propagate-header.yaml", "secret-asmwasm-cache.yaml"]
    assert stat.S_IMODE((out / "secret-asmwasm-cache.yaml").stat().st_mode) == 0o600
    assert load_yaml((out / "asmfilterdeployment-hello1-propagate-header.yaml").read_text())[0]["kind"] == \
        "ASMFilterDeployment"
    assert capsys.readouterr().out == ""


def test_pin_uses_the_registry_digest(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import meshfilter.oras.client as client

    seen: list[tuple[str, dict[str, object]]] = []

    def fake_resolve(ref: str, **kw: object) -> str:
        seen.append((ref, kw))
        return "sha256:" + "b" * 64

    monkeypatch.setattr(client, "resolve_digest", fake_resolve)
    assert main([*WP, "--pin", "--plain-http"]) == 0
    doc = load_yaml(capsys.readouterr().out)[0]
    assert doc["spec"]["sha256"] == "b" * 64
    assert doc["spec"]["url"] == "oci://registry.example.com/f/p@sha256:" + "b" * 64
    assert callable(seen[0][1].pop("report"))  # an image index's choice is reported as a note
    assert seen == [("registry.example.com/f/p:1", {"plain_http": True, "insecure": False})]


def test_validate_failure_is_envoys_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a real Envoy refuses a module that is not Wasm: exit 1, Envoy's own line
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0garbage")
    rc, out, err = _run_err(_replace(EF, "--module", str(bad)) + ["--validate"], capsys)
    assert rc == 1 and out == ""
    assert "Unable to create Wasm plugin r" in err and len(err.strip().splitlines()) == 1


def test_output_single_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "sub" / "hello1.yaml"
    assert main([*SEED, "-o", str(target)]) == 0
    assert capsys.readouterr().out == ""
    assert load_yaml(target.read_text())[0]["metadata"]["name"] == "hello1-propagate-header"
    target = tmp_path / "hello1.json"
    assert main([*SEED, "-o", str(target)]) == 0
    assert json.loads(target.read_text())["kind"] == "ASMFilterDeployment"
