"""A header rename: every value of ``from_header`` moves to ``to_header`` (copied, then removed)."""

from meshfilter.sdk import HeaderName, HttpFilter, Request


class HeaderRename(HttpFilter):
    class Config:
        from_header: HeaderName
        to_header: HeaderName

    def on_request_headers(self, request: Request) -> None:
        value = request.headers.get(self.config.from_header)
        if value is not None:
            request.headers.set(self.config.to_header, value)
            request.headers.remove(self.config.from_header)
