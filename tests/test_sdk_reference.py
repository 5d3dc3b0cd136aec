"""The reference semantics (meshfilter.sdk.api, run_request): what every backend must reproduce."""

from __future__ import annotations

import pytest

from meshfilter.errors import ConfigError, UsageError
from meshfilter.sdk import LocalReply, Request, Response, examples, run_request
from meshfilter.sdk.api import Headers, _Recorder, from_wire, to_wire
from meshfilter.sdk.config import ConfigProblem


def test_wire_form_makes_str_methods_byte_methods() -> None:
    raw = "Caf\u00e9 \u00c9"  # UTF-8 bytes: C3 A9, C3 89
    wire = to_wire(raw)
    assert len(wire) == len(raw.encode()) == 8
    assert wire.lower() == to_wire("caf\u00e9 \u00c9")  # only ASCII letters change, as in Wasm and LuaJIT
    assert wire.upper() == to_wire("CAF\u00e9 \u00c9")
    assert from_wire(wire) == raw
    assert from_wire(to_wire(b"\xff\xfe")) == "\udcff\udcfe"  # not UTF-8: kept as escapes, round trip exact
    assert to_wire(from_wire(to_wire(b"\xff"))) == to_wire(b"\xff")
    assert to_wire("\x1c a \x1f").strip() == "a"  # Python strips ASCII 28-31 too: so do the backends
    with pytest.raises(UsageError):
        to_wire("\ud800")


def test_headers_join_values_and_compare_names_case_insensitively() -> None:
    h = Headers([("X-A", "1"), ("x-b", ""), ("x-a", "2")])
    assert h.get("x-a") == "1,2" and h.get("X-B") == "" and h.get("x-c") is None
    assert "X-A" in h and "x-c" not in h
    h.set("X-A", "3")
    assert h.items() == [("x-b", ""), ("x-a", "3")]
    h.add("x-b", "again")
    assert h.get("x-b") == ",again"
    h.remove("X-B")
    assert h.items() == [("x-a", "3")]


def test_invalid_writes_are_skipped_with_a_warning() -> None:
    rec = _Recorder()
    req = Request([(":path", "/")], recorder=rec)
    req.headers.set("bad name", "v")
    req.headers.add("x-ok", "line\nbreak")
    req.headers.set("", "v")
    assert req.headers.items() == [(":path", "/")]
    assert rec.logs == [("warn", "request.headers.set skipped: the header name is not a valid HTTP header name"),
                        ("warn", "request.headers.add skipped: the header value contains CR, LF or NUL"),
                        ("warn", "request.headers.set skipped: the header name is not a valid HTTP header name")]
    assert rec.request_mutations == 0


def test_respond_records_one_reply_and_clamps_bad_statuses() -> None:
    rec = _Recorder()
    req = Request([], recorder=rec)
    req.respond(1000, "x", headers={"Location": "/a", "x-bad": "a\rb"})
    req.respond(200)  # the first reply wins (the checker makes respond() the last thing anyway)
    assert rec.local_reply == LocalReply(500, "x", [("location", "/a")])
    assert rec.logs == [("warn", "respond: status 1000 is not in 200..599; answering 500"),
                        ("warn", "request.respond skipped: the header value contains CR, LF or NUL")]


def test_request_fields_and_response_status() -> None:
    req = Request([(":path", "/p"), (":method", "POST"), (":authority", "h"), (":scheme", "https")])
    assert (req.path, req.method, req.authority, req.scheme) == ("/p", "POST", "h", "https")
    assert Request([]).path == ""
    assert [Response([(":status", s)]).status for s in ("503", "", "12a", "1234567890", "007")] == [503, 0, 0, 0, 7]
    assert Response([]).status == 0


def test_run_request_runs_the_response_callback_on_a_local_reply() -> None:
    """As Envoy does (both its Wasm and Lua filters): the reply gets content-type/length when it has a body."""
    res = run_request(examples.load("api-key"), {"keys": ["k"]}, [(":path", "/x"), (":method", "GET")])
    assert res.local_reply == LocalReply(401, "missing or invalid API key\n", [("www-authenticate", "ApiKey")])
    assert res.response_headers == [(":status", "401"), ("www-authenticate", "ApiKey"),
                                    ("content-type", "text/plain"), ("content-length", "27")]
    assert res.logs == [("info", "refused GET /x: no valid API key")]
    assert not res.route_reselected
    stamped = run_request(examples.load("error-stamp"), None, [], [(":status", "502")])
    assert stamped.response_header("x-upstream-error") == "502"
    assert run_request(examples.load("error-stamp"), None, [], [(":status", "404")]).response_header(
        "x-upstream-error") is None


def test_route_reselection_follows_envoy() -> None:
    tag = run_request(examples.load("gateway-tag"), {}, [("user-agent", "iPhone13")])
    assert tag.route_cache_clears == 1 and tag.request_header_writes == 1 and tag.route_reselected
    rename = run_request(examples.load("header-rename"), {"from_header": "a", "to_header": "b"}, [("a", "1")])
    assert rename.route_cache_clears == 0 and rename.request_header_writes == 2 and rename.route_reselected
    untouched = run_request(examples.load("header-rename"), {"from_header": "a", "to_header": "b"}, [])
    assert not untouched.route_reselected


def test_results_are_text_again() -> None:
    res = run_request(examples.load("header-rename"), {"from_header": "x-a", "to_header": "x-b"},
                      [("x-a", "caf\u00e9"), ("x-a", b"\xff")])
    assert res.request_header("x-b") == "caf\u00e9,\udcff"


def test_the_filter_checks_its_configuration_like_the_module() -> None:
    cls = examples.load("propagate-header")
    with pytest.raises(ConfigProblem) as err:
        cls({"head_tag_name": "x y", "head_tag_value": "v"})
    assert err.value.problem == "head_tag_name is not a valid HTTP header name"
    assert isinstance(err.value, ConfigError)
    f = cls('{"head_tag_name": "Route-V", "head_tag_value": "v"}')
    assert f.config.head_tag_name == "route-v"
    with pytest.raises(AttributeError):
        f.config.head_tag_name = "other"
    assert cls.root_id == "propaganda_filter_root" and examples.load("gateway-tag").root_id == "gateway_tag"
