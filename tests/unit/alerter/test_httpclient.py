"""The lean webhook HTTP client against real local servers (127.0.0.1, asyncio)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from inferwatch.alerter.notification.httpclient import HttpError, HttpPool
from inferwatch.alerter.notification.webhook_receiver import LocalReceiver

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/hook?x=1"


async def _read_request(r: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await r.readuntil(b"\r\n\r\n")
    n = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    return head, await r.readexactly(n)


def test_posts_body_and_headers_and_reuses_the_connection() -> None:
    with LocalReceiver(respond=lambda r: (202, {"X-Seen": "yes"})) as rcv:
        async def go() -> list[int]:
            pool = HttpPool()
            out = []
            for i in range(3):
                resp = await pool.post(rcv.url, f'{{"n": {i}}}'.encode(), {"X-Test": "t"}, 5)
                out.append(resp.status)
                assert resp.headers["x-seen"] == "yes"
            await pool.aclose()
            return out

        assert asyncio.run(go()) == [202, 202, 202]
    assert [r.body for r in rcv.requests] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    assert all(r.headers["x-test"] == "t" for r in rcv.requests)
    assert len({r.headers.get("host") for r in rcv.requests}) == 1


def test_chunked_answer_and_stale_keepalive_connection() -> None:
    seen: list[bytes] = []

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head, body = await _read_request(r)
        seen.append(body)
        w.write(b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\nRetry-After: 7\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        await w.drain()
        w.close()  # closes a connection the client believes it may keep

    async def go() -> None:
        server, url = await _serve(handler)
        pool = HttpPool()
        for _ in range(2):  # the second request finds the kept connection closed and opens a new one
            resp = await pool.post(url, b"{}", {}, 5)
            assert (resp.status, resp.text, resp.headers["retry-after"]) == (503, "hello world", "7")
        await pool.aclose()
        server.close()

    asyncio.run(go())
    assert seen == [b"{}", b"{}"]


def test_timeout_and_refused_connection_raise_http_error() -> None:
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        await asyncio.sleep(5)

    async def go() -> None:
        server, url = await _serve(silent)
        pool = HttpPool()
        with pytest.raises(HttpError, match="timed out"):
            await pool.post(url, b"{}", {}, 0.2)
        server.close()
        await server.wait_closed()
        with pytest.raises(HttpError):
            await pool.post(url, b"{}", {}, 2)
        with pytest.raises(HttpError, match="unsupported URL"):
            await pool.post("ftp://127.0.0.1/x", b"{}", {}, 2)

    asyncio.run(go())
