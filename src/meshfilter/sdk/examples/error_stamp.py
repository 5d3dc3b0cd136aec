"""A response-header stamp on 5xx: an upstream error leaves with ``x-upstream-error: <status>``."""

from meshfilter.sdk import HeaderName, HttpFilter, Response


class ErrorStamp(HttpFilter):
    class Config:
        header: HeaderName = "x-upstream-error"
        threshold: int = 500

    def on_response_headers(self, response: Response) -> None:
        status = response.status
        if status >= self.config.threshold:
            response.headers.set(self.config.header, str(status))
