"""Which addresses count as loopback, and the refusal to listen past it without a token."""

from __future__ import annotations

import pytest

from skintwin.errors import SkinTwinError
from skintwin.serving.auth import check_exposure, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False),
     ("skin-twin.internal", False)],
)  # fmt: skip
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_past_loopback_only_with_a_token() -> None:
    check_exposure("127.0.0.1", None)
    check_exposure("0.0.0.0", "a-token")
    with pytest.raises(SkinTwinError, match=r"refusing to serve on 0\.0\.0\.0 without"):
        check_exposure("0.0.0.0", None)
    with pytest.raises(SkinTwinError, match="SKINTWIN_API_TOKEN"):
        check_exposure("10.0.0.5", "")


@pytest.mark.parametrize("fault", ["too large", "too slow", "gone"])
def test_a_shed_request_whose_body_fails_still_gets_the_shedding_answer(fault: str) -> None:
    """Past SKINTWIN_MAX_INFLIGHT the route reads and drops the body; one over its byte
    limit, too slow or cut off escaped that read as a 500 instead of the 503."""
    import asyncio

    from starlette.requests import ClientDisconnect, Request

    from skintwin.serving.limits import BodyTooLarge, BodyTooSlow
    from skintwin.serving.uploads import drain

    error = {"too large": BodyTooLarge, "too slow": BodyTooSlow, "gone": ClientDisconnect}[fault]

    async def receive() -> dict:
        raise error("the body failed while streaming")

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    asyncio.run(drain(request))  # returns: the route then answers 503
