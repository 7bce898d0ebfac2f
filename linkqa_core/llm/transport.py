"""A small keep-alive HTTP/1.1 transport on asyncio for plain ``http://`` endpoints.

Local model servers are where throughput matters most, and the default transport costs
about 1 ms of CPU per request (its pool scans are O(n)), which caps one process near 700
requests/s. This one writes the request, reads one response (``Content-Length``,
chunked, or to the end of the stream; 1xx skipped) and keeps the connection for the
next request. No TLS, no proxies: ``https://`` and proxied URLs use the SDK's transport.
"""

from __future__ import annotations

import asyncio
import urllib.parse
import urllib.request
from typing import Optional

import httpx2

__all__ = ["FastTransport", "proxied", "base_and_query"]



class _Disconnected(Exception):
    pass


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: write a request, read one response."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.transport: Optional[asyncio.Transport] = None
        self.buf = bytearray()
        self.closed = False
        self.waiter: Optional[asyncio.Future[None]] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _more(self) -> None:
        if self.closed:
            raise _Disconnected()
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def roundtrip(self, data: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes, bool]:
        assert self.transport is not None
        self.transport.write(data)
        buf = self.buf
        while True:  # response head, skipping 1xx
            end = buf.find(b"\r\n\r\n")
            while end < 0:
                if len(buf) > 1 << 20:
                    raise httpx2.RemoteProtocolError("response head too large")
                try:
                    await self._more()
                except _Disconnected:
                    raise httpx2.RemoteProtocolError(
                        "Server disconnected without sending a response." if not buf
                        else "Server disconnected in the middle of the response head."
                    ) from None
                end = buf.find(b"\r\n\r\n")
            head = bytes(buf[:end]).split(b"\r\n")
            del buf[: end + 4]
            status_line = head[0].split(b" ", 2)
            try:
                version, status = status_line[0], int(status_line[1])
            except (IndexError, ValueError):
                raise httpx2.RemoteProtocolError("malformed status line") from None
            reason = status_line[2] if len(status_line) > 2 else b""
            headers = []
            for line in head[1:]:
                name, _, value = line.partition(b":")
                headers.append((name.strip(), value.strip()))
            if not 100 <= status < 200:
                break
        length = None
        chunked = False
        keep = version == b"HTTP/1.1"
        for name, value in headers:
            lname = name.lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif lname == b"connection":
                v = value.lower()
                if b"close" in v:
                    keep = False
                elif b"keep-alive" in v:
                    keep = True
        if status in (204, 304):
            return status, reason, headers, b"", keep
        try:
            if chunked:
                body = await self._read_chunked()
            elif length is not None:
                while len(buf) < length:
                    await self._more()
                body = bytes(buf[:length])
                del buf[:length]
            else:  # read to end of stream
                while not self.closed:
                    await self._more()
                body = bytes(buf)
                buf.clear()
                keep = False
        except _Disconnected:
            raise httpx2.RemoteProtocolError("Server disconnected in the middle of the response body.") from None
        return status, reason, headers, body, keep

    async def _read_chunked(self) -> bytes:
        buf = self.buf
        out = bytearray()
        while True:
            end = buf.find(b"\r\n")
            while end < 0:
                await self._more()
                end = buf.find(b"\r\n")
            size = int(bytes(buf[:end]).split(b";")[0].strip() or b"0", 16)
            del buf[: end + 2]
            if size == 0:  # trailers end with an empty line
                while True:
                    end = buf.find(b"\r\n")
                    while end < 0:
                        await self._more()
                        end = buf.find(b"\r\n")
                    line = bytes(buf[:end])
                    del buf[: end + 2]
                    if not line:
                        return bytes(out)
            while len(buf) < size + 2:
                await self._more()
            out += buf[:size]
            del buf[: size + 2]


class FastTransport(httpx2.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 over asyncio for ``http://`` URLs; no TLS, no proxies.

    About a third of the CPU per request of the default transport, and O(1) pool work,
    so one process can keep hundreds of requests in flight.
    """

    def __init__(self, max_idle: int = 1024):
        self.max_idle = max_idle
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._closed = False

    async def _connect(self, host: str, port: int, timeout: Optional[float]) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(lambda: _Connection(loop), host, port)
        except TimeoutError:
            raise httpx2.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as err:
            raise httpx2.ConnectError(f"cannot connect to {host}:{port}: {err.strerror or err}") from None
        return conn

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._closed:
            raise httpx2.ConnectError("transport is closed", request=request)
        url = request.url
        host, port = url.host, url.port or 80
        timeouts = request.extensions.get("timeout") or {}
        body = await request.aread()
        lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), url.raw_path)]
        lines.extend(k + b": " + v for k, v in request.headers.raw)
        data = b"\r\n".join(lines) + b"\r\n\r\n" + body
        pool = self._idle.setdefault((host, port), [])
        conn = None
        while pool:
            candidate = pool.pop()
            if candidate.closed or candidate.buf:
                candidate.close()
                continue
            conn = candidate
            break
        if conn is None:
            conn = await self._connect(host, port, timeouts.get("connect"))
        try:
            async with asyncio.timeout(timeouts.get("read")):
                status, reason, headers, content, keep = await conn.roundtrip(data)
        except TimeoutError:
            conn.close()
            raise httpx2.ReadTimeout("timed out waiting for the response", request=request) from None
        except httpx2.HTTPError as err:
            conn.close()
            err.request = request
            raise
        except BaseException:  # cancelled mid-request: the connection's state is unknown
            conn.close()
            raise
        if keep and not conn.closed and not self._closed and len(pool) < self.max_idle:
            pool.append(conn)
        else:
            conn.close()
        return httpx2.Response(
            status,
            headers=headers,
            stream=httpx2.ByteStream(content),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def aclose(self) -> None:
        self._closed = True
        for pool in self._idle.values():
            for conn in pool:
                conn.close()
        self._idle.clear()


def proxied(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def base_and_query(url: str) -> tuple[str, dict[str, str]]:
    """A base URL without its query, and the query as parameters for every request: the
    SDK would glue ``/chat/completions`` after the query (``?api-key=...`` endpoints)."""
    parts = urllib.parse.urlsplit(url)
    if not parts.query:
        return url, {}
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), query
