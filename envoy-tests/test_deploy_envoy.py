"""The emitted deployment resources, checked by a real Envoy (and a real registry).

- ``--validate`` runs ``envoy --mode validate`` on the resource's Envoy part: the real
  propagate-header module (``meshfilter.wasm.build_propagate_header``) must load and accept its
  configuration; failures show Envoy's own line;
- the Envoy part of the emitted EnvoyFilter and WasmPlugin then runs in Envoy (``start`` fixture,
  both backends) in front of the echo upstream and replaces the header on a real request;
- ``--pin`` resolves the digest in a real registry (Debian's docker-registry on loopback) and the
  WasmPlugin's module is pulled from it; the pull Secret carries that registry's credentials only.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from meshfilter.cli import main
from meshfilter.envoy import RunningEnvoy
from meshfilter.envoy.bootstrap import filter_bootstrap
from meshfilter.envoy.echo import EchoServer
from meshfilter.errors import EnvoyValidationError
from meshfilter.filters.propagate import ROOT_ID
from meshfilter.k8s.envoy_check import check_resource, envoy_part
from meshfilter.k8s.output import load_yaml
from meshfilter.k8s.schema import schema_errors
from meshfilter.k8s.secret import decode
from meshfilter.oras.client import RegistryClient
from meshfilter.oras.formats import build_artifact
from meshfilter.oras.runtime_config import build_runtime_config
from meshfilter.testing.file_server import serve_directory
from meshfilter.testing.registry import RegistryServer
from meshfilter.wasm import build_propagate_header

pytestmark = [pytest.mark.envoy]

PARAMS = '{"head_tag_name": "route-v", "head_tag_value": "hello2v2"}'
REPO = "asm_wasm/propagate_header:0.0.1"


@pytest.fixture(scope="module")
def module() -> bytes:
    return build_propagate_header(abi="0.2.1", root_id=ROOT_ID)


@pytest.fixture
def module_file(module: bytes, tmp_path: Path) -> Path:
    path = tmp_path / "propagate_header.wasm"
    path.write_bytes(module)
    return path


def _push(reg: RegistryServer, module: bytes) -> str:
    art = build_artifact("asm", module, runtime_config=build_runtime_config([ROOT_ID]).to_bytes())
    return RegistryClient(f"{reg.host}/{REPO}", **reg.client_kwargs()).push(art)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, module: bytes) -> Iterator[tuple[RegistryServer, str]]:
    with RegistryServer(tmp_path_factory.mktemp("deploy-reg"), "open") as reg:
        yield reg, _push(reg, module)


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory,
                  module: bytes) -> Iterator[tuple[RegistryServer, str]]:
    with RegistryServer(tmp_path_factory.mktemp("deploy-reg-auth"), "htpasswd") as reg:
        yield reg, _push(reg, module)


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def _serve_and_request(start: Callable[..., RunningEnvoy], http_filters: list[dict[str, Any]]) -> list[str]:
    """Run the filters in Envoy before the echo upstream; the route-v values the upstream saw."""
    with EchoServer() as echo:
        envoy = start(filter_bootstrap(http_filters, upstream=(echo.host, echo.port)))
        resp = requests.get(envoy.url(path="/hello"), headers={"route-v": "old"}, timeout=10)
        assert resp.status_code == 200, resp.text
        return [v for k, v in resp.json()["raw_headers"] if k == "route-v"]


def test_envoyfilter_validates_and_filters_requests(module_file: Path, start: Callable[..., RunningEnvoy],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _cli(["deploy", "envoyfilter", "--name", "hello1-propagate-header", "--namespace", "default",
                         "--label", "app=hello1-deploy-v2", "--module", str(module_file), "--root-id", ROOT_ID,
                         "--parameters", PARAMS, "--istio-version", "1.22", "--priority", "10", "--validate"],
                        capsys)
    assert rc == 0, err
    assert "Envoy loaded the filter" in err
    (doc,) = load_yaml(out)
    assert doc["kind"] == "EnvoyFilter" and schema_errors(doc) == []
    assert _serve_and_request(start, envoy_part(doc)) == ["hello2v2"]


@pytest.mark.registry
def test_wasmplugin_pinned_from_registry_validates_and_filters_requests(
        registry: tuple[RegistryServer, str], start: Callable[..., RunningEnvoy],
        capsys: pytest.CaptureFixture[str]) -> None:
    reg, digest = registry
    rc, out, err = _cli(["deploy", "wasmplugin", "--name", "hello1-propagate-header", "--label", "app=hello1",
                         "--image", f"{reg.host}/{REPO}", "--pin", "--plain-http", "--root-id", ROOT_ID,
                         "--parameters", PARAMS, "--validate"], capsys)
    assert rc == 0, err
    (doc,) = load_yaml(out)
    assert doc["spec"]["sha256"] == digest.removeprefix("sha256:")
    assert doc["spec"]["url"] == f"oci://{reg.host}/asm_wasm/propagate_header@{digest}"
    assert schema_errors(doc) == []
    # the Envoy part: the module pulled by the pinned URL, pluginConfig as the configuration
    http = envoy_part(doc, oci_fetcher=lambda ref: RegistryClient(ref.removeprefix("oci://"),
                                                                  **reg.client_kwargs()).pull().module)
    assert _serve_and_request(start, http) == ["hello2v2"]


@pytest.mark.registry
def test_pin_follows_the_tag(registry: tuple[RegistryServer, str], capsys: pytest.CaptureFixture[str]) -> None:
    reg, _ = registry
    other = build_propagate_header(abi="0.1.0", root_id=ROOT_ID)  # different bytes -> different digest
    art = build_artifact("asm", other, runtime_config=build_runtime_config([ROOT_ID]).to_bytes())
    new_digest = RegistryClient(f"{reg.host}/asm_wasm/other:1", **reg.client_kwargs()).push(art)
    rc, out, err = _cli(["deploy", "wasmplugin", "--name", "p", "--image", f"{reg.host}/asm_wasm/other:1",
                         "--pin", "--plain-http"], capsys)
    assert rc == 0, err
    assert load_yaml(out)[0]["spec"]["sha256"] == new_digest.removeprefix("sha256:")
    rc, out, err = _cli(["deploy", "wasmplugin", "--name", "p", "--image", f"{reg.host}/asm_wasm/missing:1",
                         "--pin", "--plain-http"], capsys)
    assert rc == 1 and out == "" and len(err.strip().splitlines()) == 1


@pytest.mark.registry
def test_asm_with_pull_secret_against_auth_registry(auth_registry: tuple[RegistryServer, str], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    reg, _ = auth_registry
    cfg = tmp_path / "config.json"
    other = base64.b64encode(b"someone:else-secret").decode()
    cfg.write_text(json.dumps({"auths": {
        reg.host: {"auth": base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()},
        "other.example.com": {"auth": other}}}))
    rc, out, err = _cli(["deploy", "asm", "--name", "hello1-propagate-header", "--label", "app=hello1",
                         "--image", f"{reg.host}/{REPO}", "--root-id", ROOT_ID, "--parameters", PARAMS,
                         "--pull-secret", "asmwasm-cache", "--with-pull-secret", "--docker-config", str(cfg),
                         "--plain-http", "--validate"], capsys)
    assert rc == 0, err
    asm, secret = load_yaml(out)
    assert asm["spec"]["filter"]["imagePullOptions"] == {"pullSecret": "asmwasm-cache"}
    assert list(decode(secret)["auths"]) == [reg.host]
    assert "else-secret" not in out and other not in out and "other.example.com" not in out
    assert reg.password not in err
    # the WasmPlugin pin authenticates with the same docker config
    rc, out, err = _cli(["deploy", "wasmplugin", "--name", "p", "--image", f"{reg.host}/{REPO}", "--pin",
                         "--plain-http", "--docker-config", str(cfg)], capsys)
    assert rc == 0, err


def test_envoyfilter_from_url_is_fetched_and_verified(module: bytes, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f.wasm").write_bytes(module)
    sha = hashlib.sha256(module).hexdigest()

    with serve_directory(tmp_path) as served:
        url = f"{served}/f.wasm"
        base = ["deploy", "envoyfilter", "--name", "f", "--url", url, "--root-id", ROOT_ID, "--parameters", PARAMS,
                "--validate"]
        rc, out, err = _cli([*base, "--sha256", sha], capsys)
        assert rc == 0, err
        code = load_yaml(out)[0]["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["config"][
            "vm_config"]["code"]
        assert code["remote"]["sha256"] == sha and code["remote"]["http_uri"]["uri"] == url
        rc, out, err = _cli([*base, "--sha256", "0" * 64], capsys)
        assert rc == 1 and out == "" and "module sha256 is" in err


@pytest.mark.parametrize(("args", "envoy_says"), [
    (["--root-id", ROOT_ID, "--filter", "generic", "--parameters", '{"head_tag_name": "route-v"}'],
     "propagate-header: missing key head_tag_value"),
    (["--root-id", "not_the_root_id", "--parameters", PARAMS], "Unable to create Wasm plugin not_the_root_id"),
])
def test_validate_failure_shows_envoys_own_line(args: list[str], envoy_says: str, module_file: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _cli(["deploy", "envoyfilter", "--name", "f", "--module", str(module_file), *args,
                         "--validate"], capsys)
    assert rc == 1 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("meshfilter: error: EnvoyFilter/f: Envoy refused the configuration") and envoy_says in line


def test_check_resource_library(module: bytes) -> None:
    from meshfilter.k8s.wasmplugin import wasm_plugin

    doc = wasm_plugin("p", url="oci://r.example.com/x:1", plugin_name=ROOT_ID,
                      plugin_config=json.loads(PARAMS))
    assert "" != check_resource(doc, module=module)
    doc["spec"]["pluginConfig"] = {"head_tag_value": "x"}
    with pytest.raises(EnvoyValidationError, match="missing key head_tag_name"):
        check_resource(doc, module=module)
