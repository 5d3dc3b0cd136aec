"""meshfilter.sdk: proxy-wasm filters written in Python.

A filter is a small, typed class::

    from meshfilter.sdk import HttpFilter, Request, Response

    class Canary(HttpFilter):
        class Config:
            header: str
            value: str = "version-gray"

        def on_request_headers(self, request: Request) -> None:
            request.headers.set(self.config.header, self.config.value)
            request.clear_route_cache()

meshfilter runs it as it is in CPython (:func:`run_request`: the reference semantics), compiles the
same source to a proxy-wasm module (``meshfilter wasm build python``) and to an Envoy Lua script
(``meshfilter lua build``); the three agree on every request. :func:`check_file` is the static
checker the compilers run first. See docs/sdk.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshfilter.sdk.api import HeaderName, HeaderValue, HttpFilter, LocalReply, Request, Response

__all__ = ["ConfigProblem", "FilterSourceError", "HeaderName", "HeaderValue", "HttpFilter", "LocalReply", "Request",
           "Response", "Result", "check_file", "check_source", "run_request"]

_LAZY = {"run_request": "meshfilter.sdk.reference", "Result": "meshfilter.sdk.reference",
         "check_file": "meshfilter.sdk.checker", "check_source": "meshfilter.sdk.checker",
         "FilterSourceError": "meshfilter.sdk.checker", "ConfigProblem": "meshfilter.sdk.config"}

if TYPE_CHECKING:
    from meshfilter.sdk.checker import FilterSourceError, check_file, check_source
    from meshfilter.sdk.config import ConfigProblem
    from meshfilter.sdk.reference import Result, run_request


def __getattr__(name: str) -> Any:
    import importlib

    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'meshfilter.sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
