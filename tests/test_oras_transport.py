"""Lower-level failures are classified by exception TYPE, never by message text (like httpx)."""

from __future__ import annotations

import ssl

import requests
import urllib3

from meshfilter.errors import RegistryError
from meshfilter.oras.transport import Transient, classify


def wrapped(reason: BaseException, outer: type[requests.RequestException] = requests.exceptions.ConnectionError
            ) -> requests.RequestException:
    return outer(urllib3.exceptions.MaxRetryError(None, "/v2/", reason))  # type: ignore[arg-type]


def test_unreachable_by_type() -> None:
    refused = wrapped(urllib3.exceptions.NewConnectionError(None, "nothing about it here"))  # type: ignore[arg-type]
    got = classify(refused, "ping", "h:1")
    assert isinstance(got, Transient) and got.kind == "unreachable"
    assert "registry unreachable" in got.error("h:1", 4).line()
    timeout = classify(requests.exceptions.ConnectTimeout("x"), "ping", "h:1")
    assert isinstance(timeout, Transient) and timeout.kind == "unreachable" and "connect timed out" in timeout.detail


def test_message_text_does_not_decide() -> None:
    # the words a message-matching classifier looked for, on a failure of another kind
    lying = requests.exceptions.ReadTimeout("Connection refused NewConnectionError Failed to resolve")
    got = classify(lying, "get blob", "h:1")
    assert isinstance(got, Transient) and got.kind == "timeout"
    reset = requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError("Connection refused",
                                                                               ConnectionResetError()))
    got = classify(reset, "upload", "h:1")
    assert isinstance(got, Transient) and got.kind == "lost" and "connection lost during upload" in \
        got.error("h:1", 4).line()


def test_tls() -> None:
    untrusted = wrapped(ssl.SSLCertVerificationError(1, "whatever"), requests.exceptions.SSLError)
    got = classify(untrusted, "ping", "h:1")
    assert isinstance(got, RegistryError) and "certificate not trusted during ping" in got.line()
    assert "`plain_http`" in (got.hint or "") and "`ca_file`" in (got.hint or "")
    other = wrapped(ssl.SSLError(1, "wrong version number"), requests.exceptions.SSLError)
    assert "TLS failed" in classify(other, "ping", "h:1").args[0]


def test_status_and_unknown() -> None:
    t = Transient("status", "manifest upload", status=503)
    assert t.error("h:1", 4).line() == "h:1: manifest upload failed: registry answered HTTP 503 4 times " \
                                       "(hint: see the registry's log)"
    assert classify(requests.exceptions.ChunkedEncodingError("x"), "s", "h").kind == "lost"  # type: ignore[union-attr]
