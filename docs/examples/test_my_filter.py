"""A complete example test for filter authors, using meshfilter's pytest plugin (no conftest needed).

Run it with:  python -m pytest docs/examples/test_my_filter.py
"""

import json
import urllib.request

from meshfilter.envoy import bootstrap
from meshfilter.examples.landing import LandingClient
from meshfilter.wasm import build_propagate_header

CONFIG = {"head_tag_name": "route-v", "head_tag_value": "hello2v2"}


def test_module_in_the_emulator(wasm_emulator):
    emu = wasm_emulator(build_propagate_header(), root_id="propaganda_filter_root", plugin_config=CONFIG)
    result = emu.run_request([(":path", "/"), ("route-v", "a"), ("route-v", "b")])
    assert result.request_header_values("route-v") == ["hello2v2"]


def test_module_in_a_real_envoy(envoy_with_filters, tmp_path):
    module = tmp_path / "propagate_header.wasm"
    module.write_bytes(build_propagate_header())
    envoy = envoy_with_filters([bootstrap.wasm_filter(
        code=bootstrap.wasm_code(path=str(module)),
        configuration=json.dumps(CONFIG),
        root_id="propaganda_filter_root",
    )])
    request = urllib.request.Request(envoy.url("main", "/"), headers={"route-v": "v1"})
    with urllib.request.urlopen(request) as response:
        echoed = json.load(response)  # the echo upstream answers with the headers it received
    assert [v for k, v in echoed["raw_headers"] if k == "route-v"] == ["hello2v2"]


def test_grpc_example_server(landing_server):
    with LandingClient(landing_server) as client:
        assert client.talk("0").status == 200
