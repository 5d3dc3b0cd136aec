"""The distribution API's URLs and header parsing (pure)."""

from __future__ import annotations

from meshfilter.oras import endpoints as ep
from meshfilter.oras.reference import parse_reference

REF = parse_reference("localhost:5000/asm_wasm/ph:0.0.1")


def test_urls() -> None:
    assert ep.api_root("localhost:5000", True) == "http://localhost:5000/v2/"
    assert ep.manifest_url(REF, False) == "https://localhost:5000/v2/asm_wasm/ph/manifests/0.0.1"
    assert ep.manifest_url(REF, True, "sha256:" + "a" * 64).endswith("/manifests/sha256:" + "a" * 64)
    assert ep.blob_url(REF, True, "sha256:ab") == "http://localhost:5000/v2/asm_wasm/ph/blobs/sha256:ab"
    assert ep.upload_start_url(REF, True) == "http://localhost:5000/v2/asm_wasm/ph/blobs/uploads/"
    assert ep.upload_start_url(REF, True, mount="sha256:ab", from_repository="x/y").endswith(
        "/blobs/uploads/?mount=sha256%3Aab&from=x%2Fy")
    assert ep.tags_url(REF, True) == "http://localhost:5000/v2/asm_wasm/ph/tags/list"
    assert ep.tags_url(REF, True, n=2, last="b").endswith("/tags/list?n=2&last=b")


def test_locations_and_queries() -> None:
    base = "http://localhost:5000/v2/a/blobs/uploads/"
    loc = ep.absolute(base, "/v2/a/blobs/uploads/u1?_state=xyz")
    assert loc == "http://localhost:5000/v2/a/blobs/uploads/u1?_state=xyz"
    assert ep.absolute(base, "https://other/x") == "https://other/x"
    assert ep.with_query(loc, digest="sha256:ab") == loc + "&digest=sha256%3Aab"
    assert ep.with_query("http://h/u", digest="d") == "http://h/u?digest=d"
    assert ep.content_range(0, 10) == "0-9" and ep.content_range(10, 11) == "10-10"


def test_received_bytes_and_links() -> None:
    assert ep.received_bytes("0-9") == 10 and ep.received_bytes("bytes=0-99") == 100
    assert ep.received_bytes("0-0") == 0 and ep.received_bytes(None) is None and ep.received_bytes("5-9") is None
    assert ep.next_link('</v2/a/tags/list?n=2&last=b>; rel="next"', "http://h:1/v2/a/tags/list?n=2") == \
        "http://h:1/v2/a/tags/list?n=2&last=b"
    assert ep.next_link(None, "http://h/") is None and ep.next_link('<x>; rel="prev"', "http://h/") is None
