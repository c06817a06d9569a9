"""Who may call the service: on loopback anyone on this machine; past it, only a caller
with the bearer token.

`SKINTWIN_API_TOKEN` (from the environment, never from params.yaml, never logged) makes
every route but `/health` answer 401 without `Authorization: Bearer <token>`; the token is
compared in constant time, before the request body is read, so a refused request is never
predicted on nor logged to the store. `serve` refuses a non-loopback address without one.
"""

from __future__ import annotations

import hmac
import ipaddress
import json

from skintwin.errors import SkinTwinError

OPEN_PATHS = frozenset({"/health"})  # a load balancer's probe needs no secret
TOKEN_VARIABLE = "SKINTWIN_API_TOKEN"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or "localhost"; anything else (0.0.0.0, a name, an interface's
    address) is reachable from elsewhere."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to listen past loopback without a token (the message says why and how)."""
    if not is_loopback(host) and not token:
        raise SkinTwinError(
            f"refusing to serve on {host} without {TOKEN_VARIABLE}: the service has no other "
            f"authentication, so off loopback every route but /health needs a bearer token; "
            f"set {TOKEN_VARIABLE} (clients send 'Authorization: Bearer <token>') or serve "
            "on 127.0.0.1 behind your own proxy"
        )


class BearerAuth:
    """ASGI middleware: 401 for a request without the token (none set: everyone passes)."""

    def __init__(self, app, token: str | None) -> None:
        self.app = app
        self._token = token.encode() if token else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or self._token is None or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, given = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._token):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "missing or wrong bearer token"}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="skin-twin"')]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})
