"""HTTP to one registry host: session, TLS trust, timeouts, authentication challenges, and the mapping of
lower-level failures to meshfilter's errors by exception TYPE (as httpx does), never by message text.

Two kinds of failure come out of :meth:`Connection.request`:

* :class:`Transient` – worth retrying an idempotent step: the connection was lost (reset, closed mid-body,
  read timeout), the host was unreachable, or the registry answered 5xx. :meth:`RegistryClient._retry`
  decides how often, then calls :meth:`Transient.error` for the one line the user sees;
* :class:`~meshfilter.errors.RegistryError` – final: TLS refused, or a certificate not trusted.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
import urllib3

from meshfilter.errors import RegistryError
from meshfilter.oras.auth import Authenticator, Credentials

TIMEOUT = (10.0, 120.0)  # connect, read
TLS_HINT = "if the registry speaks plain HTTP pass `plain_http`; for a private CA pass `ca_file` CA.pem (or `insecure`)"

Body = bytes | memoryview | Callable[[], Any] | None


class Transient(Exception):
    """A failure a retry may cure. ``kind``: ``unreachable`` | ``timeout`` | ``lost`` | ``status``."""

    def __init__(self, kind: str, step: str, *, status: int = 0, detail: str = "") -> None:
        self.kind, self.step, self.status, self.detail = kind, step, status, detail
        super().__init__(f"{step}: {kind} {status or ''} {detail}".strip())

    def error(self, host: str, attempts: int, step: str | None = None) -> RegistryError:
        """The one line after the last attempt of ``step`` (default: the request's own step)."""
        step = step or self.step
        if self.kind == "status":
            answer = f"HTTP {self.status}" if self.status else "without an upload session"
            return RegistryError(f"{step} failed: registry answered {answer} {attempts} times", where=host,
                                 hint="see the registry's log")
        if self.kind == "unreachable":
            return RegistryError(f"registry unreachable ({self.detail})", where=host,
                                 hint="is the registry running and is the host:port right?")
        return RegistryError(f"connection lost during {step} after {attempts} attempts ({self.detail})",
                             where=host, hint="check the network path to the registry and retry")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: ``__cause__``/``__context__``, urllib3's ``reason``, exception args."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        nested = [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
        stack.extend(x for x in nested if isinstance(x, BaseException))


def _has(exc: BaseException, *types: type[BaseException]) -> bool:
    return any(isinstance(e, types) for e in _causes(exc))


def classify(exc: requests.RequestException, step: str, host: str) -> Transient | RegistryError:
    """Map a requests/urllib3 failure to a :class:`Transient` or a final :class:`RegistryError`, by type."""
    if isinstance(exc, requests.exceptions.SSLError) or _has(exc, ssl.SSLError):
        if _has(exc, ssl.SSLCertVerificationError):
            return RegistryError(f"certificate not trusted during {step}", where=host, hint=TLS_HINT)
        return RegistryError(f"TLS failed during {step}", where=host, hint=TLS_HINT)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Transient("unreachable", step, detail="connect timed out")
    if _has(exc, urllib3.exceptions.NewConnectionError, ConnectionRefusedError):
        # urllib3's NameResolutionError is a NewConnectionError too
        return Transient("unreachable", step, detail="connection refused or unknown host")
    if isinstance(exc, requests.exceptions.ReadTimeout) or _has(exc, urllib3.exceptions.ReadTimeoutError):
        return Transient("timeout", step, detail="read timed out")
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        return Transient("lost", step, detail=type(_innermost(exc)).__name__)
    return Transient("lost", step, detail=type(exc).__name__)


def _innermost(exc: BaseException) -> BaseException:
    last = exc
    for e in _causes(exc):
        last = e
    return last


class Connection:
    """Requests to one registry host with the credentials for that host only."""

    def __init__(self, host: str, *, plain_http: bool, verify: bool | str, credentials: Credentials | None,
                 timeout: tuple[float, float] = TIMEOUT) -> None:
        self.host = host
        if verify is True:  # what requests would take from the environment on every request
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.verify = verify
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "meshfilter-oras"
        # Every request goes to this one host: read the proxy environment once, not on each request (requests
        # walks os.environ per request when trust_env is on), and never pick up ~/.netrc credentials.
        self.session.trust_env = False
        self.session.proxies = requests.utils.get_environ_proxies(f"{'http' if plain_http else 'https'}://{host}/")
        self.authenticator = Authenticator(host, credentials, self.session, verify)

    @contextmanager
    def mapped(self, step: str) -> Iterator[None]:
        """Map requests' exceptions raised inside (e.g. while streaming a body) as :meth:`request` does."""
        try:
            yield
        except requests.RequestException as exc:
            raise classify(exc, step, self.host) from None

    def request(self, method: str, url: str, *, step: str, headers: dict[str, str] | None = None,
                body: Body = None, stream: bool = False, allow_redirects: bool = True) -> requests.Response:
        """One request; a 401 challenge is answered (credentials or token) and the request sent again.
        ``body`` may be a callable making a fresh body, so a re-send after a challenge can stream it again."""
        resp: requests.Response | None = None
        for _ in range(3):
            hdrs = dict(headers or {})
            hdrs.update(self.authenticator.header)
            data: Any = body() if callable(body) else body
            with self.mapped(step):
                resp = self.session.request(method, url, data=data, headers=hdrs, stream=stream,
                                            verify=self.verify, timeout=self.timeout,
                                            allow_redirects=allow_redirects)
            if resp.status_code != 401 or not self.authenticator.answer(resp):
                return resp
            resp.close()
        assert resp is not None
        return resp


class _ViewReader:
    """A request body over a memoryview: no copy of the data, progress reported as it is read."""

    def __init__(self, view: memoryview, advance: Callable[[int], None] | None) -> None:
        self._view = view
        self._pos = 0
        self._advance = advance
        self.len = len(view)

    def __len__(self) -> int:
        return self.len - self._pos

    def read(self, n: int = -1) -> memoryview:
        end = self.len if n is None or n < 0 else min(self.len, self._pos + n)
        chunk = self._view[self._pos:end]
        self._pos = end
        if self._advance is not None and len(chunk):
            self._advance(len(chunk))
        return chunk


def view_body(view: memoryview, advance: Callable[[int], None] | None = None) -> Callable[[], Any]:
    """A re-creatable body over ``view`` (see :meth:`Connection.request`): the memoryview itself (one
    ``sendall``, no copy), or a reader reporting progress as the socket takes it."""
    if advance is None:
        return lambda: view
    return lambda: _ViewReader(view, advance)
