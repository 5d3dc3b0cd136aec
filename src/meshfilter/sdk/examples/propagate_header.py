"""The seed's propagate-header filter, written in Python.

Every request leaves with exactly one ``head_tag_name: head_tag_value`` header, whatever the client
sent, and the route is selected again (so routes can match on the header). The configuration is
checked like the hand-written module's (``meshfilter wasm build propagate-header``), with the same
problem texts: ``propagate-header: missing key head_tag_name`` and so on.
"""

from meshfilter.sdk import HeaderName, HeaderValue, HttpFilter, Request


class PropagateHeader(HttpFilter):
    root_id = "propaganda_filter_root"

    class Config:
        head_tag_name: HeaderName
        head_tag_value: HeaderValue

    def on_request_headers(self, request: Request) -> None:
        request.headers.set(self.config.head_tag_name, self.config.head_tag_value)
        request.clear_route_cache()
