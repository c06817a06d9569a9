"""Request bodies bounded while they stream in: bytes counted as they arrive (a chunked
upload has no Content-Length to trust), and the whole body due within a deadline (a slow
sender cannot hold a connection). Pure ASGI middleware, so nothing is buffered first."""

from __future__ import annotations

import asyncio

from skintwin.serving.settings import Settings


class BodyTooLarge(Exception):
    """The request body passed its byte limit while streaming."""


class BodyTooSlow(Exception):
    """The request body did not arrive in time."""


class BodyLimits:
    """ASGI middleware: `receive` raises BodyTooLarge / BodyTooSlow for the app to answer."""

    def __init__(self, app, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.upload_timeout_s
        limit = (
            self.settings.max_request_bytes
            if scope["path"].endswith("/batch")
            else self.settings.max_upload_bytes + 64 * 1024  # one image and its framing
        )
        state = {"received": 0, "done": False}

        async def bounded_receive():
            if state["done"]:  # the body is in: later messages (disconnect) pass through
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise BodyTooSlow(
                    f"request body not received within {self.settings.upload_timeout_s:g} s"
                ) from None
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    raise BodyTooLarge(f"request body exceeds {limit} bytes")
                state["done"] = not message.get("more_body", False)
            return message

        await self.app(scope, bounded_receive, send)
