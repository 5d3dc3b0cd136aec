"""An API-key check: a request without a key from the configured list is answered 401 right here.

A request with a listed key goes on, without the key header (the upstream never sees the key).
"""

from meshfilter.sdk import HeaderName, HttpFilter, Request


class ApiKeyCheck(HttpFilter):
    class Config:
        keys: list[str]
        header: HeaderName = "x-api-key"

    def on_request_headers(self, request: Request) -> None:
        key = request.headers.get(self.config.header)
        if key is None or key not in self.config.keys:
            self.log.info(f"refused {request.method} {request.path}: no valid API key")
            request.respond(401, "missing or invalid API key\n", headers={"www-authenticate": "ApiKey"})
            return
        request.headers.remove(self.config.header)
