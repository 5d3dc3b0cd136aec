"""`meshfilter wasm diff` from the command line, against a real Envoy."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshfilter.cli import main

ROOT = Path(__file__).resolve().parent.parent
AS_FILTER = ROOT / "tests" / "data" / "wasm_sdk" / "as_filter.wasm"
CORPUS = ROOT.parent / "shared" / "wasm-corpus"


def test_diff_prints_no_difference_for_the_as_filter(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["wasm", "diff", str(AS_FILTER), "--root-id", "as_tag", "--config", "gray",
               "--header", "user-agent=curl/8"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out == f"{AS_FILTER}: no difference between Envoy and the emulator (same upstream headers, local " \
                  "reply and logs)\n"


def test_diff_of_a_refused_module(capsys: pytest.CaptureFixture[str]) -> None:
    module = CORPUS / "mosn" / "add_req_header_v1.wasm"
    if not module.exists():
        pytest.skip("the shared wasm corpus is not beside the repository")
    assert main(["wasm", "diff", str(module), "--json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["same"] is True
    assert report["envoy"]["refused"].startswith("Bad function signature for: proxy_on_request_headers")
    assert report["emulator"]["refused"] == report["envoy"]["refused"]
