"""A lean HTTP/1.1 client for the upstream provider calls: keep-alive pools per origin.

One request per connection at a time (no pipelining).  The request goes out as one
buffer; the answer is parsed as it arrives (status line, headers, then a body framed by
Content-Length, chunked transfer or the connection's end; gzip/deflate decoded).  A
pooled connection found dead *before* the request is written is replaced silently;
once bytes are written nothing is ever re-sent (an LLM POST is not idempotent).  An
answer abandoned before its end (error, timeout, the client went away) closes its
connection, so the upstream sees the cancel and no half-read connection is pooled.
TLS verifies with the default context (as aiohttp did).  Redirects are not followed
and proxies are not supported (the aiohttp session this replaces read no proxy
settings either).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import cast
from urllib.parse import quote, urlsplit

from tollhouse.errors import ConfigError

_MAX_HEAD = 64 * 1024
_HIGH_WATER = 1 << 20  # buffered, unread body bytes before reading pauses
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
_DIGITS = re.compile(r"[0-9]{1,18}")
_BAD_HEADER = re.compile(r"[\r\n\0]")

_HEAD, _LENGTH, _SIZE, _DATA, _CRLF, _TRAILER, _EOF, _DONE, _IDLE = range(9)


def default_ssl_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(("http/1.1",))
    return ctx


_SSL = default_ssl_context()  # loads the CA store once, at import, not in the loop


class HTTPClientError(OSError):
    """A transport failure talking to an upstream (timeouts raise ``TimeoutError``)."""


class ConnectFailed(HTTPClientError):
    pass


class Disconnected(HTTPClientError):
    pass


class BadResponse(HTTPClientError):
    pass


class InvalidURL(HTTPClientError):
    """Never echoes the URL (it may carry credentials)."""


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """Fixed request headers, encoded once (a CR/LF in a value is a config error)."""
    out = [b"Accept: */*\r\nAccept-Encoding: identity\r\n"]
    for name, value in headers.items():
        if _BAD_HEADER.search(name) or _BAD_HEADER.search(value) or ":" in name:
            raise ConfigError(f"header {name!r}: line breaks or NUL are not allowed")
        try:
            out.append(f"{name}: {value}\r\n".encode("latin-1"))
        except UnicodeEncodeError:
            raise ConfigError(f"header {name!r}: only Latin-1 characters are allowed") from None
    return b"".join(out)


def _parse_head(head: bytes) -> tuple[int, bool, dict[str, str]]:
    """(status, HTTP/1.1?, headers with lower-case names; repeats joined by ', ')."""
    lines = head.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code = rest[:3]
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or not code.isdigit() or len(code) != 3:
        raise BadResponse("the upstream sent a malformed status line")
    if len(rest) > 3 and rest[3:4] != b" ":
        raise BadResponse("the upstream sent a malformed status line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name[-1:] in (b" ", b"\t") or line[:1] in (b" ", b"\t"):
            raise BadResponse("the upstream sent a malformed header")
        key = name.decode("latin-1").lower()
        val = value.strip(b" \t").decode("latin-1")
        headers[key] = f"{headers[key]}, {val}" if key in headers else val
    return int(code), version == b"HTTP/1.1", headers


def _tokens(value: str) -> set[str]:
    return {t.strip().lower() for t in value.split(",")}


class _Conn(asyncio.Protocol):
    """One connection and the parse state of the exchange in flight on it."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.dead = False
        self.idle_since = 0.0
        self.state = _IDLE
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = True
        self.pieces: list[bytes] = []
        self.buffered = 0
        self.error: BaseException | None = None
        self._buf = bytearray()
        self._no_body = False
        self._remaining = 0
        self._decoder: zlib._Decompress | None = None
        self._paused = False
        self.whole = False  # the reader wants the whole body: never pause reading
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._read_timeout = 0.0
        self._deadline = 0.0
        self._last_io = 0.0

    # --- the exchange -------------------------------------------------------------
    def send(self, data: bytes, *, no_body: bool, read_timeout: float, deadline: float) -> None:
        assert self.transport is not None  # noqa: S101 - connected before use
        self.state, self.status, self.headers, self.keep_alive = _HEAD, 0, {}, True
        self._no_body, self._decoder, self.error = no_body, None, None
        self.whole = False
        self.take()  # a body left unread by the last exchange (and un-pause)
        self._read_timeout, self._deadline = read_timeout, deadline
        self._last_io = now = self.loop.time()
        self._timer = self.loop.call_at(min(now + read_timeout, deadline), self._on_timer)
        self.transport.write(data)

    @property
    def done(self) -> bool:
        return self.state == _DONE

    @property
    def reusable(self) -> bool:
        return self.state == _DONE and self.keep_alive and not self.dead and not self._buf

    async def wait(self) -> None:
        """Until something happens on the exchange (head, body bytes, end, error)."""
        if self.error is None:
            fut = self._waiter = self.loop.create_future()
            try:
                await fut
            finally:
                self._waiter = None
        if self.error is not None:
            raise self.error

    def take(self) -> bytes:
        pieces = self.pieces
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        pieces.clear()
        self.buffered = 0
        self.resume()
        return data

    def resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        self.dead = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.abort()

    # --- asyncio.Protocol ---------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if self.state in (_IDLE, _DONE):  # nothing was asked: the connection is unusable
            self.abort()
            return
        self._last_io = self.loop.time()
        self._buf += data
        try:
            self._parse()
        except BadResponse as exc:
            self._fail(exc)
            return
        self._wake()

    def eof_received(self) -> bool:
        self.dead = True
        if self.state == _EOF:
            self._finish()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.dead = True
        if self.state == _EOF:  # a close-delimited body ends here
            self._finish()
        elif self.state not in (_IDLE, _DONE) and self.error is None:
            self.error = Disconnected("the upstream closed the connection")
            self._stop_timer()
        self._wake()

    # --- parsing ------------------------------------------------------------------
    def _parse(self) -> None:
        buf = self._buf
        if self.state == _HEAD:
            if not self._parse_head(buf):
                return
        if self.state == _LENGTH:
            n = self._remaining
            if len(buf) >= n:
                self._add(bytes(buf[:n]))
                del buf[:n]
                self._finish()
            else:
                self._remaining -= len(buf)
                self._add(bytes(buf))
                buf.clear()
        elif self.state == _EOF:
            self._add(bytes(buf))
            buf.clear()
        elif self.state != _DONE:
            self._parse_chunked(buf)

    def _parse_head(self, buf: bytearray) -> bool:
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0 or end > _MAX_HEAD:
                if len(buf) > _MAX_HEAD:
                    raise BadResponse("the upstream's response head is too large")
                return False
            status, http11, headers = _parse_head(bytes(buf[:end]))
            del buf[: end + 4]
            if status >= 200:
                break
            if status == 101:
                raise BadResponse("the upstream switched protocols")
        connection = _tokens(headers.get("connection", ""))
        self.status, self.headers = status, headers
        self.keep_alive = "close" not in connection if http11 else "keep-alive" in connection
        te = headers.get("transfer-encoding")
        cl = headers.get("content-length")
        if self._no_body or status in (204, 304):
            self.state = _DONE
        elif te is not None:
            chunked = te.rsplit(",", 1)[-1].strip().lower() == "chunked"
            self.state = _SIZE if chunked else _EOF
            self.keep_alive = self.keep_alive and chunked and cl is None
        elif cl is not None:
            values = {v.strip() for v in cl.split(",")}
            value = values.pop()
            if values or not _DIGITS.fullmatch(value):
                raise BadResponse("the upstream sent an invalid Content-Length")
            self._remaining = int(value)
            self.state = _LENGTH if self._remaining else _DONE
        else:
            self.state, self.keep_alive = _EOF, False
        coding = headers.get("content-encoding", "identity").strip().lower()
        if coding in ("gzip", "x-gzip", "deflate"):
            self._decoder = zlib.decompressobj(47 if coding != "deflate" else 15)
        elif coding != "identity":
            raise BadResponse(f"the upstream sent an unsupported content-encoding {coding!r}")
        if self.state == _DONE:
            self._finish()
        return True

    def _parse_chunked(self, buf: bytearray) -> None:
        while buf:
            state = self.state
            if state == _DATA:
                n = min(self._remaining, len(buf))
                self._add(bytes(buf[:n]))
                del buf[:n]
                self._remaining -= n
                if self._remaining:
                    return
                self.state = _CRLF
            elif state == _CRLF:
                if len(buf) < 2:
                    return
                if buf[:2] != b"\r\n":
                    raise BadResponse("the upstream sent a malformed chunk")
                del buf[:2]
                self.state = _SIZE
            else:  # _SIZE or _TRAILER: one line
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > 4096:
                        raise BadResponse("the upstream sent a malformed chunk")
                    return
                line = bytes(buf[:end])
                del buf[: end + 2]
                if state == _TRAILER:
                    if not line:
                        self._finish()
                        return
                    continue
                size = line.split(b";", 1)[0].strip(b" \t")
                if not _HEX.fullmatch(size):
                    raise BadResponse("the upstream sent a malformed chunk size")
                self._remaining = int(size, 16)
                self.state = _DATA if self._remaining else _TRAILER

    def _add(self, piece: bytes) -> None:
        if self._decoder is not None:
            try:
                piece = self._decoder.decompress(piece)
            except zlib.error:
                raise BadResponse("the upstream sent a body that does not decompress") from None
        if piece:
            self.pieces.append(piece)
            self.buffered += len(piece)
            if self.buffered > _HIGH_WATER and not self.whole and not self._paused:
                assert self.transport is not None  # noqa: S101 - data came through it
                self._paused = True
                self.transport.pause_reading()

    def _finish(self) -> None:
        if self._decoder is not None:
            tail, self._decoder = self._decoder.flush(), None
            if tail:
                self.pieces.append(tail)
                self.buffered += len(tail)
        self.state = _DONE
        self._stop_timer()

    # --- timeouts and wake-ups ----------------------------------------------------
    def _on_timer(self) -> None:
        self._timer = None
        now = self.loop.time()
        if now >= self._deadline:
            self._fail(TimeoutError("the upstream call took longer than its total timeout"))
        elif not self._paused and now - self._last_io >= self._read_timeout:
            self._fail(TimeoutError("the upstream sent nothing within the read timeout"))
        else:
            base = now if self._paused else self._last_io
            when = min(base + self._read_timeout, self._deadline)
            self._timer = self.loop.call_at(when, self._on_timer)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        self.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Response:
    """An answer whose head has arrived; its body is read with ``read``/``iter_chunks``.

    ``release`` hands the connection back to the pool when the body was read to its end
    (else it closes it); every path through here ends in ``release`` or ``close``."""

    __slots__ = ("_conn", "_pool", "headers", "status")

    def __init__(self, conn: _Conn, pool: _Pool) -> None:
        self._conn: _Conn | None = conn
        self._pool = pool
        self.status = conn.status
        self.headers = conn.headers

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body, or (with ``limit``) at most its first ``limit`` bytes."""
        conn = self._conn
        if conn is None:
            return b""
        conn.whole = limit is None
        if conn.whole:
            conn.resume()
        try:
            while not conn.done and (limit is None or conn.buffered < limit):
                await conn.wait()
        except BaseException:
            self.release()
            raise
        data = conn.take()
        return data if limit is None else data[:limit]

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (one piece per read); releases at its end."""
        conn = self._conn
        if conn is None:
            return
        try:
            while True:
                if conn.pieces:
                    yield conn.take()
                elif conn.done:
                    break
                else:
                    await conn.wait()
        finally:
            self.release()

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.put(conn)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()
            self._pool.put(conn)


class _Pool:
    """The keep-alive connections to one origin, at most ``limit`` open at once."""

    def __init__(self, client: Client, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self.client = client
        self.loop = client.loop
        self.host, self.port, self.tls = host, port, tls
        self.idle: list[_Conn] = []
        self.open: set[_Conn] = set()
        self.waiters: deque[asyncio.Future[_Conn | None]] = deque()
        self.closed = False

    async def acquire(self) -> _Conn:
        client = self.client
        while True:
            now = self.loop.time()
            while self.idle:
                conn = self.idle.pop()  # the most recently used first
                transport = conn.transport
                if conn.dead or transport is None or transport.is_closing():
                    self._drop(conn)
                elif now - conn.idle_since > client.keepalive:
                    conn.abort()
                    self._drop(conn)
                else:
                    return conn
            if len(self.open) < client.limit:
                return await self._connect()
            fut: asyncio.Future[_Conn | None] = self.loop.create_future()
            self.waiters.append(fut)
            try:
                async with asyncio.timeout(client.connect_timeout):
                    got = await fut
            except BaseException:
                if fut.done() and not fut.cancelled() and (lost := fut.result()) is not None:
                    self.put(lost)
                elif fut.done() and not fut.cancelled():
                    self._wake_one(None)  # pass the free slot on
                raise
            if got is not None:
                return got

    async def _connect(self) -> _Conn:
        client = self.client
        conn = _Conn(self)
        self.open.add(conn)
        try:
            async with asyncio.timeout(client.connect_timeout):
                await self.loop.create_connection(
                    lambda: conn,
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls is not None else None,
                )
        except OSError as exc:
            self._drop(conn)
            raise ConnectFailed(f"connection failed: {type(exc).__name__}") from exc
        except BaseException:
            conn.abort()
            self._drop(conn)
            raise
        return conn

    def put(self, conn: _Conn) -> None:
        """Back to the pool if the exchange ended cleanly, else closed."""
        if not conn.reusable or self.closed:
            conn.abort()
            self._drop(conn)
            return
        conn.state = _IDLE
        conn.idle_since = self.loop.time()
        if not self._wake_one(conn):
            self.idle.append(conn)
            if self.idle[0].idle_since + self.client.keepalive < conn.idle_since:
                stale = self.idle.pop(0)
                stale.abort()
                self._drop(stale)

    def _drop(self, conn: _Conn) -> None:
        if conn in self.open:
            self.open.discard(conn)
            self._wake_one(None)

    def _wake_one(self, conn: _Conn | None) -> bool:
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return True
        return False

    def close(self) -> None:
        self.closed = True
        for conn in list(self.open):
            conn.abort()
        self.open.clear()
        self.idle.clear()


class Client:
    """Pools per origin, with the provider's connect/read/total timeouts."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        total_timeout: float,
        limit: int = 256,
        keepalive: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        self.limit = limit
        self.keepalive = keepalive
        self.ssl_context = ssl_context or _SSL
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._targets: dict[str, tuple[_Pool, bytes]] = {}

    async def request(self, method: str, url: str, body: bytes, headers: bytes) -> Response:
        """Send one request; returns once the answer's head has arrived."""
        target = self._targets.get(url)
        if target is None:
            target = self._target(url)
        pool, line = target
        data = b"%b %b%bContent-Length: %d\r\n\r\n%b" % (
            method.encode(),
            line,
            headers,
            len(body),
            body,
        )
        deadline = self.loop.time() + self.total_timeout
        conn = await pool.acquire()
        try:
            conn.send(
                data, no_body=method == "HEAD", read_timeout=self.read_timeout, deadline=deadline
            )
            while conn.state == _HEAD:
                await conn.wait()
        except BaseException:
            conn.abort()
            pool.put(conn)
            raise
        return Response(conn, pool)

    def _target(self, url: str) -> tuple[_Pool, bytes]:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise InvalidURL("the upstream URL needs http:// or https:// and a host")
        if parts.username is not None or parts.password is not None:
            raise InvalidURL("the upstream URL must not carry credentials (use api_key)")
        host = parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        pool = self._pools.get(key)
        if pool is None:
            tls = self.ssl_context if scheme == "https" else None
            pool = self._pools[key] = _Pool(self, host, port, tls)
        path = quote(parts.path or "/", safe="/:@!$&'()*+,;=-._~%")
        if parts.query:
            path += "?" + quote(parts.query, safe="/:@!$&'()*+,;=-._~%?")
        ascii_host = host if host.isascii() else host.encode("idna").decode("ascii")
        name = f"[{host}]" if ":" in host else ascii_host
        default = port == (443 if scheme == "https" else 80)
        host_line = name if default else f"{name}:{port}"
        line = f"{path} HTTP/1.1\r\nHost: {host_line}\r\n".encode("ascii")
        if len(self._targets) >= 1024:
            self._targets.clear()
        self._targets[url] = (pool, line)
        return pool, line

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        self._targets.clear()
