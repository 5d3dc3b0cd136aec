"""A path-prefix redirect: ``/old/x?y`` is answered ``302`` with ``location: /new/x?y``."""

from meshfilter.sdk import HttpFilter, Request


class PathRedirect(HttpFilter):
    class Config:
        from_prefix: str
        to_prefix: str
        status: int = 302

    def on_request_headers(self, request: Request) -> None:
        path = request.path
        if path.startswith(self.config.from_prefix):
            target = self.config.to_prefix + path.removeprefix(self.config.from_prefix)
            request.respond(self.config.status, headers={"location": target})
