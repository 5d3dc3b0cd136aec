"""``meshfilter new NAME``: the files of a new filter project. Pure (returns the files' text).

The project is a filter written in Python (``filter.py``), its configuration (``config.json``), tests
that run it as the reference, in the Wasm host emulator, in a real Envoy and on every backend side by
side (``test_filter.py``, through meshfilter's pytest plugin), and a README with the commands.
"""

from __future__ import annotations

import json
import keyword
import re

from meshfilter.errors import UsageError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")

_FILTER = '''"""The {name} filter: tags requests for a canary release.

A request whose user-agent contains ``match`` gets ``header: value``, any other ``header:
version-base`` (one value, whatever the client sent), and the route is selected again so routes can
match on the tag. A 5xx response is stamped with ``x-{name}-failed: 1``.

Edit it, then run ``pytest``: the same class runs in CPython (the reference), compiled to Wasm in the
emulator and in a real Envoy, and compiled to Lua, and every backend must agree.
"""

from meshfilter.sdk import HeaderName, HttpFilter, Request, Response


class {cls}(HttpFilter):
    root_id = "{root_id}"

    class Config:
        header: HeaderName                 # required: the header to set
        value: str = "version-gray"        # optional fields have a default
        match: str = "iPhone13"

    def on_request_headers(self, request: Request) -> None:
        ua = request.headers.get("user-agent")   # str | None: every value, joined with ","
        if ua is not None and self.config.match in ua:
            request.headers.set(self.config.header, self.config.value)
        else:
            request.headers.set(self.config.header, "version-base")
        request.clear_route_cache()

    def on_response_headers(self, response: Response) -> None:
        if response.status >= 500:
            response.headers.add("x-{name}-failed", "1")
'''

_TEST = '''"""Tests for the {name} filter (run: pytest). The fixtures come from meshfilter's pytest plugin."""

import json
import urllib.request
from pathlib import Path

from filter import {cls}

from meshfilter.envoy import bootstrap
from meshfilter.sdk import run_request
from meshfilter.wasm.python_filter import build_python_filter

HERE = Path(__file__).resolve().parent
CONFIG = json.loads((HERE / "config.json").read_text())
IPHONE = [(":method", "GET"), (":path", "/"), (":authority", "example.com"), ("user-agent", "Mozilla (iPhone13,2)")]


def test_reference_semantics():
    result = run_request({cls}, CONFIG, IPHONE)
    assert result.request_header(CONFIG["header"]) == "version-gray"
    assert result.route_cache_clears == 1
    other = run_request({cls}, CONFIG, [(":path", "/"), ("user-agent", "curl/8")], [(":status", "503")])
    assert other.request_header(CONFIG["header"]) == "version-base"
    assert other.response_header("x-{name}-failed") == "1"


def test_wasm_module_in_the_emulator(wasm_emulator):
    emu = wasm_emulator(build_python_filter(HERE / "filter.py"), plugin_config=CONFIG, root_id={cls}.root_id)
    assert emu.configured, emu.logs_at("error")
    result = emu.run_request(IPHONE)
    assert result.request_header_values(CONFIG["header"]) == ["version-gray"]
    assert result.route_cache_clears == 1


def test_wasm_module_in_a_real_envoy(envoy_with_filters, tmp_path):
    module = tmp_path / "filter.wasm"
    module.write_bytes(build_python_filter(HERE / "filter.py"))
    envoy = envoy_with_filters([bootstrap.wasm_filter(code=bootstrap.wasm_code(path=str(module)),
                                                      configuration=json.dumps(CONFIG), root_id={cls}.root_id)])
    request = urllib.request.Request(envoy.url("main", "/"), headers={{"user-agent": "iPhone13"}})
    with urllib.request.urlopen(request) as response:
        echoed = json.load(response)  # the echo upstream answers with the headers it received
    assert [v for k, v in echoed["raw_headers"] if k == CONFIG["header"]] == ["version-gray"]


def test_every_backend_agrees(filter_backends):
    # the reference, the Wasm emulator, Lua in LuaJIT, and a real Envoy running the Wasm module and the Lua script
    for headers in ([("user-agent", "iPhone13")], [("user-agent", "curl/8"), (CONFIG["header"], "forged")], []):
        side = filter_backends({cls}, CONFIG, headers, status=503)
        assert side.agree(), side.differences()
'''

_README = '''# {name}

A filter for Envoy written in Python with [meshfilter](https://pypi.org/project/meshfilter/): one
class, run as it is for tests, compiled to a proxy-wasm module and to an Envoy Lua script.

    pytest                                                   # reference, emulator, real Envoy: all agree
    meshfilter wasm build python filter.py -o {name}.wasm    # the proxy-wasm module (a few KB)
    meshfilter envoy run --wasm {name}.wasm --config "$(cat config.json)"   # prints its URL; then, elsewhere:
    curl -s -H 'user-agent: iPhone13' http://127.0.0.1:PORT/          # the echo shows {header}: version-gray
    meshfilter lua build filter.py --config "$(cat config.json)" -o {name}.lua         # or as Lua
    meshfilter lua build filter.py --config "$(cat config.json)" --envoyfilter         # an Istio EnvoyFilter

What a filter may use, and what is refused at build time, is in meshfilter's docs/sdk.md.
'''


def class_name(name: str) -> str:
    """``my-canary`` -> ``MyCanary``."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]+", name) if part)


def scaffold(name: str) -> dict[str, str]:
    """The files of project ``name``: path (relative) -> text."""
    if not _NAME.match(name):
        raise UsageError(f"{name!r} is not a usable filter name", where="name",
                         hint="use letters, digits, - and _, starting with a letter, e.g. canary")
    cls = class_name(name)
    if keyword.iskeyword(cls) or not cls.isidentifier() or cls in ("HttpFilter", "Request", "Response"):
        raise UsageError(f"{name!r} would make the class name {cls!r}", where="name", hint="choose another name")
    root_id = name.replace("-", "_").lower()
    header = "x-" + name.lower().replace("_", "-") + "-tag"
    fields = {"name": name, "cls": cls, "root_id": root_id, "header": header}
    return {
        "filter.py": _FILTER.format(**fields),
        "config.json": json.dumps({"header": header, "value": "version-gray"}) + "\n",
        "test_filter.py": _TEST.format(**fields),
        "README.md": _README.format(**fields),
    }
