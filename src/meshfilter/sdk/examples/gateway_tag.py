"""The seed's gateway tagging rule: iPhone13 clients are tagged for the gray version.

A request whose ``user-agent`` contains ``iPhone13`` leaves with ``x-asm-prefer-tag: version-gray``,
any other with ``x-asm-prefer-tag: version-base`` (one value, whatever the client sent); then the
route is selected again, so the gateway's routes can match on the tag. The same rule as
``meshfilter lua tag --header user-agent --contains iPhone13 --set x-asm-prefer-tag=version-gray
--else x-asm-prefer-tag=version-base``.
"""

from meshfilter.sdk import HeaderName, HeaderValue, HttpFilter, Request


class GatewayTag(HttpFilter):
    class Config:
        match: str = "iPhone13"
        tag_header: HeaderName = "x-asm-prefer-tag"
        gray: HeaderValue = "version-gray"
        base: HeaderValue = "version-base"

    def on_request_headers(self, request: Request) -> None:
        ua = request.headers.get("user-agent")
        if ua is not None and self.config.match in ua:
            request.headers.set(self.config.tag_header, self.config.gray)
        else:
            request.headers.set(self.config.tag_header, self.config.base)
        request.clear_route_cache()
