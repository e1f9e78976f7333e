"""A small HTTP proxy in front of an S3-compatible server (the moto server) that adds a fixed latency to
every request and counts requests and bytes, so that a benchmark sees what an object store costs.

A local moto server answers in about a millisecond; Amazon S3 takes some 10-50 ms to the first byte of
a GET within a region (more across regions), and that wait, paid once per request, is what a reader
with many small requests pays for. The proxy sleeps ``latency_s`` before it forwards each request
(requests in parallel wait in parallel, as on S3). ``fail`` optionally answers some requests with an
error instead (a fault injected by a test: a key that cannot be read).

Used by ``python -m benchmarks.trips.s3`` and by the trip-summary tests.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade"}


class DelayProxy:
    """``with DelayProxy("http://127.0.0.1:5000", latency_s=0.02) as proxy:`` then point the S3 client at
    ``proxy.url``; ``proxy.stats()`` gives the requests (by method) and the bytes sent and received."""

    def __init__(self, upstream: str, latency_s: float = 0.0, fail: Callable[[str, str], int | None] | None = None):
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname, parts.port or 80
        self.latency_s, self.fail = latency_s, fail
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._bytes_out = self._bytes_in = 0
        self._local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients use

            def log_message(self, *args):  # quiet
                pass

            def _relay(self) -> None:
                body = self._read_body()
                proxy._count(self.command, len(body))
                if proxy.latency_s:
                    time.sleep(proxy.latency_s)
                status = proxy.fail(self.command, self.path) if proxy.fail else None
                if status:
                    payload = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError</Code>"
                               b"<Message>fault injected by the test proxy</Message></Error>")
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                # the body is read here whole (chunked or not): forward it with its length, and without
                # an Expect: 100-continue the upstream server would answer before the body arrives
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in _HOP_BY_HOP and k.lower() not in ("content-length", "expect")}
                headers["Content-Length"] = str(len(body))
                response = proxy._forward(self.command, self.path, body, headers)
                payload = response.read()
                self.send_response_only(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(payload))
                self.send_header("Content-Length", length or "0")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                    proxy._count_out(len(payload))

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-delay-proxy", daemon=True)

    def _forward(self, method: str, path: str, body: bytes, headers: dict) -> http.client.HTTPResponse:
        for attempt in range(2):  # a kept-alive upstream connection may have been closed meanwhile
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
            try:
                conn.request(method, path, body=body, headers=headers)
                return conn.getresponse()
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _count(self, method: str, bytes_in: int) -> None:
        with self._lock:
            self._requests[method] += 1
            self._bytes_in += bytes_in

    def _count_out(self, bytes_out: int) -> None:
        with self._lock:
            self._bytes_out += bytes_out

    def stats(self) -> dict:
        with self._lock:
            return {"requests": sum(self._requests.values()), "by_method": dict(sorted(self._requests.items())),
                    "bytes_read": self._bytes_out, "bytes_written": self._bytes_in}

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._bytes_out = self._bytes_in = 0

    def start(self) -> DelayProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
