"""A filter that answers every request itself and reports, in a response header, whether its own
response callback saw a content-length on that local reply (Envoy 1.40 sets one only with a body)."""

from meshfilter.sdk import HttpFilter, Request, Response


class LocalReplyHeaders(HttpFilter):
    class Config:
        body: str = ""

    def on_request_headers(self, request: Request) -> None:
        request.respond(403, body=self.config.body)

    def on_response_headers(self, response: Response) -> None:
        if "content-length" in response.headers:
            response.headers.set("x-saw-content-length", "yes")
        else:
            response.headers.set("x-saw-content-length", "no")
