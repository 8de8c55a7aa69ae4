"""An HTTP proxy on 127.0.0.1 in front of an S3 server (moto's): counts requests by kind, keeps
the peak number of requests in flight, can wait ``delay`` seconds before each answer (a real
store's first-byte latency), and can answer chosen requests with HTTP 500 (a flaky endpoint).
Used by the object-storage tests and by ``benchmarks/s3.py`` to count each contender's requests."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
        "upgrade", "host", "content-length"}


# dummy credentials for the benchmarks' moto server (never a real account's)
BENCH_ENV = {
    "AWS_ACCESS_KEY_ID": "bench-key",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_SHARED_CREDENTIALS_FILE": "",
    "AWS_CONFIG_FILE": "",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def bucket_behind_proxy(env: dict, bucket: str, delay: float = 0.0):
    """moto's server (:class:`MotoServer`) with ``bucket`` made and an :class:`S3Proxy` in
    front of it: yields (the server, an s3fs client of the server itself, the proxy), all
    closed after."""
    import s3fs

    moto = MotoServer(env)
    proxy = None
    try:
        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": moto.endpoint})
        fs.mkdir(bucket)
        proxy = S3Proxy(moto.endpoint, delay=delay)
        yield moto, fs, proxy
    finally:
        if proxy is not None:
            proxy.close()
        moto.close()


class MotoServer:
    """moto's S3 server as its own process on 127.0.0.1 (closer to a separate service), with
    the credentials of ``env``."""

    def __init__(self, env: dict) -> None:
        import os
        import subprocess
        import sys
        import urllib.request

        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, **env))
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1)
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def request_kind(method: str, path: str, headers) -> str:
    """LIST, HEAD, GET (ranged or whole), PUT, COPY, multipart steps, DELETE, POST."""
    parts = urlsplit(path)
    query = parse_qs(parts.query, keep_blank_values=True)
    key = parts.path.strip("/").partition("/")[2]
    if method == "GET" and (not key or "list-type" in query or "prefix" in query):
        return "LIST"
    if method == "GET":
        return "GET range" if headers.get("Range") else "GET"
    if method == "PUT" and "partNumber" in query:
        return "PUT part"
    if method == "PUT" and headers.get("x-amz-copy-source"):
        return "COPY"
    if method == "POST" and "uploads" in query:
        return "multipart start"
    if method == "POST" and "uploadId" in query:
        return "multipart complete"
    if method == "DELETE" and "uploadId" in query:
        return "multipart abort"
    if method == "POST" and "delete" in query:
        return "DELETE (batch)"
    return method


class S3Proxy:
    """``fail(predicate, times)`` makes the next ``times`` requests for which
    ``predicate(kind, path)`` holds answer 500 InternalError; ``hold(predicate)`` returns an
    event that the matching requests wait for before they are answered."""

    def __init__(self, upstream: str, delay: float = 0.0) -> None:
        target = urlsplit(upstream)
        self.delay = delay
        self.counts: Counter = Counter()
        self.in_flight = 0
        # the peak of requests in flight since the last reset_peak()/reset()
        self.peak = 0
        # (kind, path, Range header or "") of every request, in order
        self.log: list[tuple[str, str, str]] = []
        self.failures: list = []
        # (predicate, threading.Event): a matching request waits until its event is set
        self.holds: list = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # TCP_NODELAY: an answer written as headers, then a small body, would otherwise
            # wait for the client's delayed ACK (40 ms on Linux) on top of ``delay``
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                with proxy._lock:
                    proxy.in_flight += 1
                    proxy.peak = max(proxy.peak, proxy.in_flight)
                try:
                    if proxy.delay:
                        time.sleep(proxy.delay)
                    self._answer()
                finally:
                    with proxy._lock:
                        proxy.in_flight -= 1

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                kind = request_kind(self.command, self.path, self.headers)
                with proxy._lock:
                    proxy.counts[kind] += 1
                    proxy.log.append((kind, self.path, self.headers.get("Range", "")))
                    fail = next((f for f in proxy.failures
                                 if f[1] > 0 and f[0](kind, self.path)), None)
                    if fail is not None:
                        fail[1] -= 1
                    held = [ev for pred, ev in proxy.holds if pred(kind, self.path)]
                for ev in held:
                    ev.wait(60)
                if fail is not None:
                    payload = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>"
                               b"InternalError</Code><Message>injected</Message></Error>")
                    self.send_response(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                headers["Host"] = self.headers.get("Host", target.netloc)
                if body is not None:
                    headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                # a HEAD's length is the object's, not that of its (empty) body
                length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # many clients' connections at once

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def hold(self, predicate) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self.holds.append((predicate, event))
        return event

    def fail(self, predicate, times: int) -> None:
        with self._lock:
            self.failures.append([predicate, times])

    def reset_peak(self) -> None:
        with self._lock:
            self.peak = self.in_flight

    def reset(self) -> None:
        with self._lock:
            self.peak = self.in_flight
            self.counts.clear()
            self.log.clear()
            self.failures.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    """``python tests/s3_proxy.py UPSTREAM --delay-ms 10``: serve until stdin closes or a line
    ``stats`` asks for the counts (printed as one JSON line: counts by kind and the peak in
    flight, then both reset). Prints the proxy's endpoint first."""
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser()
    ap.add_argument("upstream")
    ap.add_argument("--delay-ms", type=float, default=0.0)
    args = ap.parse_args()
    proxy = S3Proxy(args.upstream, delay=args.delay_ms / 1000)
    print(proxy.endpoint, flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            with proxy._lock:
                out = {"counts": dict(proxy.counts), "peak": proxy.peak}
            proxy.reset()
            print(json.dumps(out), flush=True)
    proxy.close()


if __name__ == "__main__":
    main()
