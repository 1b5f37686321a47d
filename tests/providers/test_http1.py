"""The upstream HTTP/1.1 client against real servers on 127.0.0.1 (plain and TLS).

Each server here is an asyncio server that parses requests and answers with exactly the
bytes a test scripts, so framing, keep-alive and closing behaviour are under control.
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvloop

from tollhouse.errors import ConfigError
from tollhouse.providers._http1 import (
    BadResponse,
    Client,
    ConnectFailed,
    Disconnected,
    InvalidURL,
    encode_headers,
)

HEADERS = encode_headers({"Content-Type": "application/json", "Authorization": "Bearer sk-t"})
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


@dataclass
class Request:
    conn: int
    head: bytes
    body: bytes

    @property
    def line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    def header(self, name: str) -> str:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.decode().lower() == name:
                return value.strip().decode()
        return ""


Respond = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]  # True: keep going


@dataclass
class Server:
    url: str = ""
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # a connection ended


@asynccontextmanager
async def serve(respond: Respond, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    state = Server()
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await converse(reader, writer)
        except asyncio.CancelledError:
            pass  # the test is over (ending quietly: asyncio logs a cancelled handler)
        finally:
            handlers.discard(task)

    async def converse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        conn = state.connections
        state.open_now += 1
        state.most_open = max(state.most_open, state.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                req = Request(conn, head[:-4], b"")
                length = int(req.header("content-length") or 0)
                req.body = await reader.readexactly(length)
                state.requests.append(req)
                if not await respond(req, writer):
                    return
        finally:
            state.open_now -= 1
            writer.close()
            state.closed.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    state.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        yield state
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


def client(**kw: object) -> Client:
    opts: dict[str, object] = {"connect_timeout": 2.0, "read_timeout": 2.0, "total_timeout": 5.0}
    opts.update(kw)
    return Client(**opts)  # type: ignore[arg-type]


async def answer_ok(req: Request, w: asyncio.StreamWriter) -> bool:
    w.write(OK)
    return True


async def get(c: Client, url: str, body: bytes = b"{}") -> bytes:
    resp = await c.request("POST", url, body, HEADERS)
    try:
        return await resp.read()
    finally:
        resp.release()


async def test_keep_alive_reuses_one_connection_and_writes_one_request() -> None:
    async with serve(answer_ok) as srv:
        c = client()
        try:
            for i in range(3):
                assert await get(c, f"{srv.url}/v1/chat/completions", b'{"n":%d}' % i) == (
                    b'{"ok":true}'
                )
        finally:
            await c.close()
    assert srv.connections == 1
    assert [r.body for r in srv.requests] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    req = srv.requests[0]
    assert req.line == b"POST /v1/chat/completions HTTP/1.1"
    host = srv.url.removeprefix("http://")
    assert req.header("host") == host
    assert req.header("content-length") == "7"
    assert req.header("authorization") == "Bearer sk-t"


async def test_chunked_stream_arrives_piece_by_piece_then_the_connection_is_reused() -> None:
    events = [b'data: {"n":%d}\n\n' % i for i in range(5)]
    gate = asyncio.Event()

    async def stream(req: Request, w: asyncio.StreamWriter) -> bool:
        if req.body == b"plain":
            w.write(OK)
            return True
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
        w.write(b"Transfer-Encoding: chunked\r\n\r\n")
        for i, ev in enumerate(events):
            frame = b"%x;ext=1\r\n%s\r\n" % (len(ev), ev)
            if i == 1:  # a chunk split across writes, mid size line and mid data
                w.write(frame[:1])
                await w.drain()
                await asyncio.sleep(0.01)
                w.write(frame[1:9])
                await w.drain()
                await asyncio.sleep(0.01)
                w.write(frame[9:])
            else:
                w.write(frame)
            await w.drain()
            if i == 2:
                await gate.wait()  # the client has the first pieces before the rest exists
        w.write(b"0\r\nx-trailer: 1\r\n\r\n")
        return True

    async with serve(stream) as srv:
        c = client()
        try:
            resp = await c.request("POST", f"{srv.url}/s", b"stream", HEADERS)
            assert resp.status == 200
            assert resp.headers["content-type"] == "text/event-stream"
            got = b""
            async for piece in resp.iter_chunks():
                got += piece
                if got == b"".join(events[:3]):
                    gate.set()
            assert got == b"".join(events)
            assert gate.is_set()
            assert await get(c, f"{srv.url}/p", b"plain") == b'{"ok":true}'
        finally:
            await c.close()
    assert srv.connections == 1


async def test_connection_close_and_close_delimited_bodies_are_never_reused() -> None:
    async def close_after(req: Request, w: asyncio.StreamWriter) -> bool:
        if req.body == b"1":  # says close, with a length
            w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\none")
        else:  # no length: the body ends with the connection
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\ntwo and more")
        await w.drain()
        return False

    async with serve(close_after) as srv:
        c = client()
        try:
            assert await get(c, srv.url + "/", b"1") == b"one"
            assert await get(c, srv.url + "/", b"2") == b"two and more"
            assert await get(c, srv.url + "/", b"1") == b"one"
        finally:
            await c.close()
    assert srv.connections == 3
    assert len(srv.requests) == 3


async def test_a_connection_the_server_closed_while_idle_is_replaced_before_writing() -> None:
    async def once(req: Request, w: asyncio.StreamWriter) -> bool:
        w.write(OK)  # keep-alive by the headers, but the server hangs up right after
        await w.drain()
        return False

    async with serve(once) as srv:
        c = client()
        try:
            for _ in range(3):
                srv.closed.clear()
                assert await get(c, srv.url + "/x") == b'{"ok":true}'
                await asyncio.wait_for(srv.closed.wait(), 2)
                await asyncio.sleep(0.05)  # the FIN reaches the idle pooled connection
        finally:
            await c.close()
    assert srv.connections == 3
    assert len(srv.requests) == 3  # each request sent exactly once


async def test_a_post_is_not_resent_when_the_connection_dies_after_writing() -> None:
    async def hang_up(req: Request, w: asyncio.StreamWriter) -> bool:
        return False  # read the request, answer nothing, close

    async with serve(hang_up) as srv:
        c = client()
        try:
            with pytest.raises(Disconnected):
                await get(c, srv.url + "/x")
        finally:
            await c.close()
    assert len(srv.requests) == 1
    assert srv.connections == 1


async def test_read_timeout_and_total_timeout() -> None:
    async def silent(req: Request, w: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(3)
        return False

    async def trickle(req: Request, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(40):
            w.write(b"1\r\n.\r\n")
            await w.drain()
            await asyncio.sleep(0.05)
        return False

    loop = asyncio.get_running_loop()
    async with serve(silent) as srv:
        c = client(read_timeout=0.2)
        try:
            t = loop.time()
            with pytest.raises(TimeoutError):
                await get(c, srv.url + "/x")
            assert loop.time() - t < 1.5
        finally:
            await c.close()
    async with serve(trickle) as srv:
        c = client(read_timeout=0.2, total_timeout=0.6)  # reads keep coming; the total ends it
        try:
            resp = await c.request("POST", srv.url + "/x", b"{}", HEADERS)
            got = b""
            with pytest.raises(TimeoutError):
                async for piece in resp.iter_chunks():
                    got += piece
            assert 3 < len(got) < 40
        finally:
            await c.close()


async def test_cancelling_a_read_drops_the_connection_so_the_upstream_sees_it() -> None:
    async def slow_stream(req: Request, w: asyncio.StreamWriter) -> bool:
        if req.body == b"plain":
            w.write(OK)
            return True
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        for _ in range(100):
            await asyncio.sleep(0.05)
            w.write(b"1\r\n.\r\n")
            await w.drain()
        return True

    async with serve(slow_stream) as srv:
        c = client()
        try:
            resp = await c.request("POST", srv.url + "/s", b"stream", HEADERS)
            seen: list[bytes] = []

            async def consume() -> None:
                async for piece in resp.iter_chunks():
                    seen.append(piece)

            task = asyncio.create_task(consume())
            while not seen:
                await asyncio.sleep(0.01)
            srv.closed.clear()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(srv.closed.wait(), 2)  # the server saw the hang-up
            assert await get(c, srv.url + "/p", b"plain") == b'{"ok":true}'
        finally:
            await c.close()
    assert srv.connections == 2
    assert seen[0] == b"first"


async def test_abandoned_answers_close_and_leftover_bytes_are_not_reused() -> None:
    async def answers(req: Request, w: asyncio.StreamWriter) -> bool:
        if req.body == b"big":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
            await w.drain()
            await asyncio.sleep(0.5)
            return False
        if req.body == b"extra":  # more bytes than the length said
            w.write(OK + b"HTTP/1.1 200 OK\r\n")
            return True
        w.write(OK)
        return True

    async with serve(answers) as srv:
        c = client()
        try:
            resp = await c.request("POST", srv.url + "/", b"big", HEADERS)
            assert resp.status == 200
            srv.closed.clear()
            resp.release()  # unread body: the connection must go, not back to the pool
            await asyncio.wait_for(srv.closed.wait(), 2)
            assert await get(c, srv.url + "/", b"extra") == b'{"ok":true}'
            assert await get(c, srv.url + "/", b"plain") == b'{"ok":true}'
        finally:
            await c.close()
    assert srv.connections == 3


async def test_pool_limit_queues_requests() -> None:
    async def slowish(req: Request, w: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.02)
        w.write(OK)
        return True

    async with serve(slowish) as srv:
        c = client(limit=2)
        try:
            got = await asyncio.gather(*(get(c, srv.url + "/") for _ in range(8)))
        finally:
            await c.close()
    assert got == [b'{"ok":true}'] * 8
    assert srv.most_open <= 2
    assert srv.connections == 2


async def test_waiting_for_a_full_pool_is_bounded_by_the_connect_timeout() -> None:
    async def stuck(req: Request, w: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(2)
        return False

    async with serve(stuck) as srv:
        c = client(limit=1, connect_timeout=0.2)
        try:
            first = asyncio.create_task(get(c, srv.url + "/"))
            await asyncio.sleep(0.05)
            with pytest.raises(TimeoutError):
                await get(c, srv.url + "/")
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
        finally:
            await c.close()


async def test_bodies_larger_than_the_read_buffer_arrive_whole() -> None:
    big = bytes(range(256)) * (5 * 4096)  # 5 MiB, past the point where reading pauses

    async def large(req: Request, w: asyncio.StreamWriter) -> bool:
        if req.body == b"chunked":
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(big), 65536):
                piece = big[i : i + 65536]
                w.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await w.drain()
            w.write(b"0\r\n\r\n")
        else:
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big))
        await w.drain()
        return True

    async with serve(large) as srv:
        c = client()
        try:
            assert await get(c, srv.url, b"length") == big
            resp = await c.request("POST", srv.url, b"chunked", HEADERS)
            got = bytearray()
            async for piece in resp.iter_chunks():
                got += piece
                await asyncio.sleep(0.001)  # a slow reader: the buffer fills and pauses
            assert got == big
            assert await get(c, srv.url, b"length") == big
        finally:
            await c.close()
    assert srv.connections == 1


async def test_a_complete_body_left_unread_does_not_leak_into_the_next_answer() -> None:
    async def numbered(req: Request, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + req.body)
        return True

    async with serve(numbered) as srv:
        c = client()
        try:
            resp = await c.request("POST", srv.url, b"1", HEADERS)
            await asyncio.sleep(0.05)  # the body is in; nobody reads it
            resp.release()
            assert await get(c, srv.url, b"2") == b"2"
        finally:
            await c.close()
    assert srv.connections == 1


async def test_framing_variants() -> None:
    packed = gzip.compress(b'{"zipped":true}')

    async def variants(req: Request, w: asyncio.StreamWriter) -> bool:
        kind = req.body
        if kind == b"100":
            w.write(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
        elif kind == b"204":
            w.write(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\nX-A: 2\r\n\r\n")
        elif kind == b"gzip":
            w.write(
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                % (len(packed), packed)
            )
        elif kind == b"http10":
            w.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            return False
        elif kind == b"bad":
            w.write(b"HTTX/1.1 200 OK\r\n\r\n")
        elif kind == b"badlen":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok")
        elif kind == b"badchunk":
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n")
        return True

    async with serve(variants) as srv:
        c = client()
        try:
            assert await get(c, srv.url, b"100") == b'{"ok":true}'
            resp = await c.request("POST", srv.url, b"204", HEADERS)
            assert (resp.status, resp.headers["x-a"]) == (204, "1, 2")
            assert await resp.read() == b""
            resp.release()
            assert await get(c, srv.url, b"gzip") == b'{"zipped":true}'
            assert await get(c, srv.url, b"http10") == b"ok"
            for bad in (b"bad", b"badlen", b"badchunk"):
                with pytest.raises(BadResponse):
                    await get(c, srv.url, bad)
        finally:
            await c.close()
    assert srv.connections == 4  # HTTP/1.0 and each malformed answer closed theirs


def test_header_values_that_could_split_the_request_are_config_errors() -> None:
    for bad in ({"X-A": "v\r\nX-B: w"}, {"X-A\n": "v"}, {"X-A": "ключ"}, {"X:A": "v"}):
        with pytest.raises(ConfigError):
            encode_headers(bad)


async def test_urls_without_a_host_or_with_credentials_are_refused_unsent() -> None:
    c = client()
    try:
        for url in ("ftp://127.0.0.1/x", "http:///x", "https://user:sk-secret@127.0.0.1/x"):
            with pytest.raises(InvalidURL) as err:
                await get(c, url)
            assert "sk-secret" not in str(err.value)
    finally:
        await c.close()


async def test_connection_refused_is_connect_failed() -> None:
    async with serve(answer_ok) as srv:
        url = srv.url
    c = client()
    try:
        with pytest.raises(ConnectFailed):
            await get(c, url)
    finally:
        await c.close()


# --- TLS -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    assert openssl, "the TLS tests need the openssl command"
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "server.pem", d / "server.key"
    subprocess.run(  # noqa: S603 - fixed arguments
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=tollhouse test",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(crt),
        ],
        check=True,
        capture_output=True,
    )
    return crt, key


async def test_tls_with_a_trusted_test_ca(cert: tuple[Path, Path]) -> None:
    crt, key = cert
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(crt, key)
    trusting = ssl.create_default_context(cafile=str(crt))
    async with serve(answer_ok, tls=server_ctx) as srv:
        c = client(ssl_context=trusting)
        try:
            for _ in range(2):
                assert await get(c, srv.url + "/v1/chat/completions") == b'{"ok":true}'
        finally:
            await c.close()
        assert srv.connections == 1
        default = client()  # the default trust store does not know the test certificate
        try:
            with pytest.raises(ConnectFailed) as err:
                await get(default, srv.url + "/")
            assert isinstance(err.value.__cause__, ssl.SSLCertVerificationError)
        finally:
            await default.close()


# --- uvloop (what ``tollhouse serve`` runs on; its transports differ in details) ----

ON_UVLOOP = [
    test_keep_alive_reuses_one_connection_and_writes_one_request,
    test_chunked_stream_arrives_piece_by_piece_then_the_connection_is_reused,
    test_connection_close_and_close_delimited_bodies_are_never_reused,
    test_a_connection_the_server_closed_while_idle_is_replaced_before_writing,
    test_a_post_is_not_resent_when_the_connection_dies_after_writing,
    test_read_timeout_and_total_timeout,
    test_cancelling_a_read_drops_the_connection_so_the_upstream_sees_it,
    test_abandoned_answers_close_and_leftover_bytes_are_not_reused,
    test_pool_limit_queues_requests,
    test_waiting_for_a_full_pool_is_bounded_by_the_connect_timeout,
    test_bodies_larger_than_the_read_buffer_arrive_whole,
    test_a_complete_body_left_unread_does_not_leak_into_the_next_answer,
    test_framing_variants,
    test_connection_refused_is_connect_failed,
]


@pytest.mark.parametrize("scenario", ON_UVLOOP, ids=lambda f: f.__name__.removeprefix("test_"))
def test_on_uvloop(scenario: Callable[[], Awaitable[None]]) -> None:
    async def run() -> None:
        await scenario()

    uvloop.run(run())


def test_tls_on_uvloop(cert: tuple[Path, Path]) -> None:
    uvloop.run(test_tls_with_a_trusted_test_ca(cert))
