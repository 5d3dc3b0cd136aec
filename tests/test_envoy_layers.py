"""meshfilter.envoy without a circle (issue 14 item 4), and its pure pieces: the refusal line, the
hot-restart flags, pinned listener ports, the Lua module search path."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from meshfilter.envoy import bootstrap as b
from meshfilter.envoy.base import Backend, HotRestart
from meshfilter.envoy.container import ContainerBackend
from meshfilter.envoy.reload import pin_listener_ports
from meshfilter.envoy.runner import ProcessBackend
from meshfilter.envoy.validate import envoy_error_line, filter_refusal, refusal_line

SRC = Path(__file__).resolve().parents[1] / "src" / "meshfilter"


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_the_runners_do_not_import_each_other() -> None:
    container = _imports(SRC / "envoy" / "container.py", top_level_only=False)
    runner = _imports(SRC / "envoy" / "runner.py", top_level_only=True)
    assert "meshfilter.envoy.runner" not in container
    assert "meshfilter.envoy.container" not in runner  # only get_backend loads it, on demand
    for path in (SRC / "envoy" / "base.py", SRC / "util" / "proc.py"):
        assert not {m for m in _imports(path, top_level_only=False)
                    if m in ("meshfilter.envoy.runner", "meshfilter.envoy.container")}


def test_util_proc_is_the_one_proc_reader() -> None:
    """No module but util/proc.py builds a /proc/<pid>/... path."""
    readers = []
    for path in SRC.rglob("*.py"):
        if path == SRC / "util" / "proc.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) \
                    and str(node.values[0].value).startswith("/proc/"):
                readers.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert readers == []


@pytest.mark.parametrize("impl", [ProcessBackend, ContainerBackend])
def test_backend_protocol_matches_both_implementations(impl: type) -> None:
    want = inspect.signature(Backend.start).parameters
    have = inspect.signature(impl.start).parameters
    for name, param in want.items():
        assert name in have, f"{impl.__name__}.start lacks {name}"
        assert have[name].kind == param.kind and have[name].default == param.default, name


def test_backend_protocol_holds_every_parameter_both_implementations_take() -> None:
    both = set(inspect.signature(ProcessBackend.start).parameters) & set(
        inspect.signature(ContainerBackend.start).parameters)
    assert both == set(inspect.signature(Backend.start).parameters)


def test_hot_restart_flags() -> None:
    first = HotRestart(Path("/run/x"))
    assert first.flags() == ["--restart-epoch", "0", "--drain-time-s", "2", "--parent-shutdown-time-s", "4",
                             "--socket-path", "/run/x/hot-restart", "--use-dynamic-base-id",
                             "--base-id-path", "/run/x/base-id"]
    later = HotRestart(Path("/run/x"), epoch=3, base_id=77, drain_time_s=1, parent_shutdown_time_s=2)
    assert later.flags()[-2:] == ["--base-id", "77"] and later.flags()[:2] == ["--restart-epoch", "3"]
    assert later.read_base_id() == 77


def test_pin_listener_ports_fills_only_port_zero() -> None:
    boot = b.bootstrap(listeners=[b.http_listener("main", 0, routes=[b.direct_response_route()]),
                                  b.http_listener("fixed", 9999, routes=[b.direct_response_route()])])
    pinned = pin_listener_ports(boot, {"main": 41000, "fixed": 1})
    ports = [ls["address"]["socket_address"]["port_value"] for ls in pinned["static_resources"]["listeners"]]
    assert ports == [41000, 9999]
    assert boot["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] == 0  # a copy


# ------------------------------------------------------------------------------ refusal lines (real logs)

WASM_CONFIG_LOG = """\
[2026-12-02 05:12:01.683][15411][info][main] [source/server/server.cc:1] initializing epoch 0
[2026-12-02 05:12:01.683][15411][error][wasm] [source/extensions/common/wasm/context.cc:1157] wasm log propaganda_filter_root propaganda_filter_root: propagate-header: missing key head_tag_name
[2026-12-02 05:12:01.684][15411][error][wasm] [source/extensions/common/wasm/wasm.cc:104] Wasm VM failed Failed to configure base Wasm plugin
[2026-12-02 05:12:01.684][15411][critical][wasm] [source/extensions/common/wasm/wasm.cc:626] Plugin propaganda_filter_root failed to load
[2026-12-02 05:12:01.685][15411][critical][main] [source/server/server.cc:449] error `Unable to create Wasm plugin propaganda_filter_root` initializing config 'goo.gle/debugproto
  /tmp/meshfilter-envoy-rvj0mhgr/envoy.json'
Unable to create Wasm plugin propaganda_filter_root
"""  # noqa: E501

NOT_WASM_LOG = """\
[2026-12-02 05:12:09.951][15479][error][wasm] [source/extensions/common/wasm/wasm.cc:104] Wasm VM failed Failed to parse corrupted Wasm module
[2026-12-02 05:12:09.951][15479][critical][main] [source/server/server.cc:449] error `Unable to create Wasm plugin x` initializing config 'goo.gle/debugstr
"""  # noqa: E501

LUA_LOG = """\
[2026-12-02 05:11:14.394][15066][critical][main] [source/server/server.cc:449] error `script load error: [string "this is not lua("]:1: '=' expected near 'is'` initializing config 'goo.gle/debugstr
  /tmp/devloop-hr/e1.json'
"""  # noqa: E501


def test_refusal_line_is_the_modules_own_words() -> None:
    assert refusal_line(WASM_CONFIG_LOG) == "propagate-header: missing key head_tag_name"
    assert refusal_line(NOT_WASM_LOG) == "Wasm VM failed Failed to parse corrupted Wasm module"
    assert refusal_line(LUA_LOG) == "script load error: [string \"this is not lua(\"]:1: '=' expected near 'is'"


def test_envoy_error_line_is_not_cut_at_the_proto_dump() -> None:
    assert envoy_error_line(WASM_CONFIG_LOG) == "Unable to create Wasm plugin propaganda_filter_root"
    listener = "[2026][1][critical][main] [source/server/server.cc:449] error initializing configuration 'x': bad"
    assert envoy_error_line(listener) == "error initializing configuration 'x': bad"
    assert filter_refusal(listener) is None and refusal_line(listener) == envoy_error_line(listener)


# ------------------------------------------------------------------------------ Lua module search path

def test_lua_path_prefix_keeps_line_numbers_and_finds_modules(tmp_path: Path) -> None:
    from lupa import LuaRuntime

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "mylibrary.lua").write_text('local M = {}\nfunction M.foobar() return "bar" end\nreturn M\n')
    script = 'local mylibrary = require("lib.mylibrary")\nreturn mylibrary.foobar(), debug.getinfo(1).currentline\n'
    code = b.lua_filter(script, lua_path=[str(tmp_path)])["typed_config"]["default_source_code"]["inline_string"]
    assert code.endswith(script) and "\n" not in code[: -len(script)]
    value, line = LuaRuntime().execute(code)
    assert (value, line) == ("bar", 2)
    assert b.lua_filter(script) == b.lua_filter(script, lua_path=())


def test_lua_path_prefix_quotes_any_folder_name() -> None:
    from lupa import LuaRuntime

    weird = '/tmp/a "b" ]] [[c'
    prefix = b.lua_package_path_prefix([weird])
    path = LuaRuntime().execute(prefix + "return package.path")
    assert path.startswith(f"{weird}/?.lua;{weird}/?/init.lua;")


LUA_MODULE_LOG = """\
[2026-12-02 05:31:01.407][11659][critical][main] [source/server/server.cc:449] error `script load error: error loading module 'lib.mylibrary' from file '/x/lib/mylibrary.lua':
	/x/lib/mylibrary.lua:1: '=' expected near 'is'` initializing config 'goo.gle/debugstr
  /tmp/e1.json'
"""  # noqa: E501

LUA_NOT_FOUND_LOG = """\
[2026-12-02 05:31:01.775][11748][critical][main] [source/server/config_validation/server.cc:76] error initializing configuration '/tmp/v/envoy.json': script load error: [string "local m = require("lib.nothere")..."]:1: module 'lib.nothere' not found:
	no field package.preload['lib.nothere']
	no file '/x/lib/nothere.lua'
	no file '/x/lib/nothere/init.lua'
	no file './lib/nothere.lua'
	no file '/usr/local/share/luajit-2.1/lib/nothere.lua'
[2026-12-02 05:31:01.776][11748][info][main] [source/server/server.cc:1] exiting
"""  # noqa: E501


def test_refusal_line_joins_luas_continued_message() -> None:
    assert refusal_line(LUA_MODULE_LOG) == ("script load error: error loading module 'lib.mylibrary' from file "
                                            "'/x/lib/mylibrary.lua': /x/lib/mylibrary.lua:1: '=' expected near 'is'")
    assert refusal_line(LUA_NOT_FOUND_LOG) == (
        "script load error: [string \"local m = require(\"lib.nothere\")...\"]:1: module 'lib.nothere' not "
        "found: no file '/x/lib/nothere.lua'; no file '/x/lib/nothere/init.lua'; no file './lib/nothere.lua'; "
        "and 1 more")
