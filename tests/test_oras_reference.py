from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshfilter.errors import UsageError
from meshfilter.oras.reference import Reference, parse_reference

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text,expected", [
    ("localhost:5000/asm_wasm/propagate_header:0.0.1",
     Reference("localhost:5000", "asm_wasm/propagate_header", "0.0.1", None)),
    ("registry.cn-hangzhou.aliyuncs.com/ns/filter", Reference("registry.cn-hangzhou.aliyuncs.com", "ns/filter",
                                                              "latest", None)),
    (f"127.0.0.1:5000/a/b/c@{D}", Reference("127.0.0.1:5000", "a/b/c", None, D)),
    (f"127.0.0.1:5000/a:v1@{D}", Reference("127.0.0.1:5000", "a", "v1", D)),
    ("localhost/x:1", Reference("localhost", "x", "1", None)),
    ("nginx", Reference("docker.io", "library/nginx", "latest", None)),
    ("user/repo:tag", Reference("docker.io", "user/repo", "tag", None)),
    ("[::1]:5000/x:y", Reference("[::1]:5000", "x", "y", None)),
])
def test_parse(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


def test_str_and_reference_part() -> None:
    r = parse_reference("localhost:5000/a/b:1")
    assert str(r) == "localhost:5000/a/b:1" and r.reference == "1"
    assert r.with_digest(D).reference == D and str(r.with_digest(D)) == f"localhost:5000/a/b:1@{D}"


@pytest.mark.parametrize("text,needle", [
    ("", "empty"),
    ("localhost:5000/UPPER:1", "repository component 'UPPER'"),
    ("localhost:5000/a:bad tag", "whitespace"),
    ("https://localhost:5000/a:1", "URL scheme"),
    ("localhost:5000/a@sha256:xyz", "digest"),
    ("localhost:5000/a:" + "t" * 200, "tag"),
    ("localhost:5000/a//b:1", "repository component ''"),
    ("local_host:5000/a:1", "registry host"),
])
def test_bad_references_are_one_line_usage_errors(text: str, needle: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_reference(text, where="--image")
    line = exc.value.line()
    assert needle in line and line.startswith("--image: ") and "\n" not in line and "hint:" in line
    assert exc.value.exit_code == 2

_comp = st.from_regex(r"[a-z0-9]{1,6}(?:[._-][a-z0-9]{1,4}){0,2}", fullmatch=True)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_host = st.sampled_from(["localhost:5000", "127.0.0.1:35000", "registry.example.com", "r.io:443"])


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_host, st.lists(_comp, min_size=1, max_size=4), _tag, st.booleans())
def test_round_trip_property(host: str, comps: list[str], tag: str, with_digest: bool) -> None:
    text = f"{host}/{'/'.join(comps)}:{tag}" + (f"@{D}" if with_digest else "")
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag) == (host, "/".join(comps), tag)
    assert str(ref) == text and parse_reference(str(ref)) == ref


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60))
def test_arbitrary_text_is_parsed_or_usage_error(text: str) -> None:
    try:
        ref = parse_reference(text)
    except UsageError as exc:
        assert "\n" not in exc.line() and exc.exit_code == 2
    else:
        assert parse_reference(str(ref)) == ref
