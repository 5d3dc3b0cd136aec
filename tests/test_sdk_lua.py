"""Filters written in Python, compiled to Envoy Lua: configuration checked and compiled in, literals
that cannot break out, LuaJIT-checked output, only the callbacks the class defines."""

from __future__ import annotations

import pytest

from meshfilter.errors import ConfigError
from meshfilter.lua.check import compile_errors
from meshfilter.lua.inprocess import run_stream
from meshfilter.lua.python_filter import compile_program, lua_bytes, render_python_filter
from meshfilter.sdk import examples
from meshfilter.sdk.checker import check_file
from meshfilter.sdk.config import ConfigProblem


def test_the_configuration_is_checked_at_build_time_with_the_module_texts() -> None:
    program = check_file(examples.path("propagate-header"))
    with pytest.raises(ConfigProblem) as err:
        compile_program(program, {"head_tag_name": "a b", "head_tag_value": "v"})
    assert err.value.line() == ('config: head_tag_name is not a valid HTTP header name (hint: expected a JSON object '
                                'like {"head_tag_name": "x-my-header", "head_tag_value": "value"})')
    assert isinstance(err.value, ConfigError)
    with pytest.raises(ConfigProblem, match="configuration is not valid JSON"):
        compile_program(program, "{")


@pytest.mark.parametrize("value", ['"]] end os.exit(1) --[[', "a\\\nb", "caf\u00e9", "\\", '"', "--", "%s%d"])
def test_configured_text_cannot_break_out_of_its_literal(value: str) -> None:
    program = check_file(examples.path("gateway-tag"))
    source = compile_program(program, {"match": value, "gray": "gray"})
    assert compile_errors(source) is None
    hit = run_stream(source, [(b"user-agent", b"<" + value.encode() + b">")])
    assert (b"x-asm-prefer-tag", b"gray") in hit.request_headers
    miss = run_stream(source, [(b"user-agent", b"none")])
    assert (b"x-asm-prefer-tag", b"version-base") in miss.request_headers


def test_literals_are_printable_ascii_with_decimal_escapes() -> None:
    assert lua_bytes(b'a"\\\n\xff') == '"a\\034\\092\\010\\255"'


def test_only_defined_callbacks_exist() -> None:
    request_only = render_python_filter(check_file(examples.path("api-key")), {"keys": []})
    response_only = render_python_filter(check_file(examples.path("error-stamp")), {})
    assert "function envoy_on_request(h)" in request_only and "envoy_on_response" not in request_only
    assert "function envoy_on_response(h)" in response_only and "envoy_on_request" not in response_only


def test_nil_safe_on_absent_headers() -> None:
    for name in examples.EXAMPLES:
        source = compile_program(check_file(examples.path(name)), examples.EXAMPLES[name][2])
        run_stream(source, [], [])  # a nil error would raise LuaError
        run_stream(source, [(b"x-api-key", b"")], [(b":status", b"")])


def test_header_values_that_break_a_header_are_skipped_with_a_warning() -> None:
    source = compile_program(check_file(examples.path("header-rename")), {"from_header": "a", "to_header": "b"})
    res = run_stream(source, [(b"a", b"x\ny")])
    assert res.request_headers == []  # the copy was skipped, the remove was not
    assert res.logs == [("warn", b"request.headers.set skipped: the header value contains CR, LF or NUL")]
