"""A filter using every construct meshfilter.sdk compiles: the differential tests run it on every backend."""

from meshfilter.sdk import HeaderName, HttpFilter, Request, Response

METHODS = ["GET", "HEAD"]
PREFIX = "x-ks-"
LIMIT = 3


class KitchenSink(HttpFilter):
    """Reads x-custom, x-b, user-agent and x-api-key; writes x-ks-* headers; answers some paths itself."""

    class Config:
        tags: list[str] = ["alpha", "beta"]
        deny: str = "/deny"
        status: int = 418
        loud: bool = False
        out: HeaderName = "x-ks-out"

    def on_request_headers(self, request: Request) -> None:
        custom = request.headers.get("x-custom")
        count = 0
        seen = ""
        for tag in self.config.tags:
            if custom is None:
                break
            if tag not in custom:
                continue
            count += 1
            seen = seen + tag + ";"
        request.headers.set(PREFIX + "count", str(count))
        if seen:
            request.headers.set(PREFIX + "seen", seen.removesuffix(";"))
        note: str | None = None
        ua = request.headers.get("user-agent")
        if ua and ua.strip().lower().startswith("mozilla"):
            note = "browser"
        elif ua is not None and ua.upper().endswith("BOT"):
            note = "bot"
        if note is not None:
            request.headers.add(self.config.out, note)
        b = request.headers.get("x-b")
        if b is not None:
            request.headers.set(PREFIX + "b-len", f"{len(b)}/{len(b.strip())}")
            request.headers.set(PREFIX + "b", self.shout(b))  # may be an invalid value: then skipped
            request.headers.remove("x-b")
        if "x-api-key" in request.headers and request.method not in METHODS:
            self.log.warn(f"api key on {request.method} {request.path}")
        if self.config.loud or len(request.authority) > LIMIT:
            self.log.debug("authority " + request.authority + " scheme " + request.scheme)
        if request.path.startswith(self.config.deny):
            self.refuse(request, request.path.removeprefix(self.config.deny))
            return
        if self.level(custom) >= 2:
            request.clear_route_cache()

    def shout(self, text: str) -> str:
        if not text:
            return "(empty)"
        return text.upper() + "!"

    def level(self, value: str | None) -> int:
        if value is None:
            return 0
        total = 0
        for part in ["a", "b", "c"]:
            if part in value:
                total = total + 1
        return total - 0

    def refuse(self, request: Request, rest: str) -> None:
        self.log.info("refused: " + rest)
        request.respond(self.config.status, f"no {rest}\n", headers={"x-ks-reason": "denied" + rest})

    def on_response_headers(self, response: Response) -> None:
        status = response.status
        if status >= 500 or status == self.config.status:
            response.headers.set(PREFIX + "status", f"{status + 0}-err")
        if not response.headers.get("content-type"):
            response.headers.add(PREFIX + "typed", "no")
        else:
            response.headers.add(PREFIX + "typed", "yes")
        self.log.error(f"response {status}")
