"""The distribution API's URLs and headers (pure): what :mod:`meshfilter.oras.client` sends, built apart
from the HTTP that sends it (as oras-py keeps ``oras.container`` apart from its provider).

Spec: OCI distribution-spec ``spec.md`` ("pull", "push": POST/PATCH/PUT uploads, "content discovery":
tags list with ``n``/``last`` and a ``Link`` header).
"""

from __future__ import annotations

import re
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from meshfilter.oras.reference import Reference

OCTET_STREAM = "application/octet-stream"
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def base_url(registry: str, plain_http: bool) -> str:
    return f"{'http' if plain_http else 'https'}://{registry}"


def api_root(registry: str, plain_http: bool) -> str:
    """``GET /v2/``: the version check (reachability, TLS, credentials)."""
    return f"{base_url(registry, plain_http)}/v2/"


def manifest_url(ref: Reference, plain_http: bool, reference: str | None = None) -> str:
    return f"{base_url(ref.registry, plain_http)}/v2/{ref.repository}/manifests/{reference or ref.reference}"


def blob_url(ref: Reference, plain_http: bool, digest: str) -> str:
    return f"{base_url(ref.registry, plain_http)}/v2/{ref.repository}/blobs/{digest}"


def upload_start_url(ref: Reference, plain_http: bool, *, mount: str | None = None,
                     from_repository: str | None = None) -> str:
    """``POST /v2/<name>/blobs/uploads/`` (optionally a cross-repository mount)."""
    url = f"{base_url(ref.registry, plain_http)}/v2/{ref.repository}/blobs/uploads/"
    if mount and from_repository:
        url += "?" + urlencode({"mount": mount, "from": from_repository})
    return url


def tags_url(ref: Reference, plain_http: bool, *, n: int | None = None, last: str | None = None) -> str:
    url = f"{base_url(ref.registry, plain_http)}/v2/{ref.repository}/tags/list"
    params = {k: str(v) for k, v in (("n", n), ("last", last)) if v is not None}
    return url + ("?" + urlencode(params) if params else "")


def absolute(base: str, location: str) -> str:
    """A ``Location`` (or ``Link``) header made absolute against the URL of the request it answered."""
    return urljoin(base, location)


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` appended to its query (an upload URL keeps its ``_state``)."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def content_range(start: int, end_exclusive: int) -> str:
    """A PATCH chunk's ``Content-Range``: ``<start>-<end inclusive>`` (no unit, per the distribution spec)."""
    return f"{start}-{end_exclusive - 1}"


def received_bytes(range_header: str | None) -> int | None:
    """How many bytes an upload holds, from its ``Range: 0-<last>`` answer (None when absent or unreadable).

    ``0-0`` is what a registry says for an empty upload (and, ambiguously, for one byte): read as 0, so a
    resume re-sends that byte at worst, and the registry's digest check on the final PUT catches the rest.
    """
    if not range_header:
        return None
    m = re.fullmatch(r"\s*(?:bytes=)?0-(\d+)\s*", range_header)
    if not m:
        return None
    last = int(m.group(1))
    return 0 if last == 0 else last + 1


def next_link(link_header: str | None, request_url: str) -> str | None:
    """The ``rel="next"`` page of a paginated list (tags), absolute, or None on the last page."""
    if not link_header:
        return None
    m = _LINK_NEXT.search(link_header)
    return absolute(request_url, m.group(1)) if m else None
