"""A receiver URL's credentials never show in the alerter's delivery errors (recorded and logged)."""

from __future__ import annotations

import asyncio

import pytest

from inferwatch.alerter.notification.httpclient import HttpError, HttpPool

PW = "W3bh00k-Secret"


@pytest.mark.parametrize("url", [f"ftp://hook:{PW}@example.test/x", f"http://hook:{PW}@/x",
                                 f"gopher://example.test/x?token={PW}"])
def test_an_unsupported_url_is_reported_without_its_password(url: str) -> None:
    with pytest.raises(HttpError) as info:
        asyncio.run(HttpPool().post(url, b"{}", {}, 1.0))
    assert PW not in str(info.value) and "unsupported URL" in str(info.value)
