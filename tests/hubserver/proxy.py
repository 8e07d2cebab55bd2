"""A loopback proxy in front of a test Hub (olah) that can change what passes: a Hub that lies, for tests.

    with HubProxy(olah.url, rewrite) as proxy:
        env["HF_ENDPOINT"] = proxy.url

`rewrite(method, path, status, headers, body)` gets each answer (headers as a dict, body as bytes) and
returns `(status, headers, body)`; a body may also be an iterable of byte chunks, sent as they come (a slow
server). `forward(method, path)` may change the path asked upstream. Every request is logged in `requests`.
Standard library only; it binds 127.0.0.1 on a free port and never follows redirects itself.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "te",
               "trailer", "upgrade"}


class HubProxy:
    def __init__(self, upstream: str, rewrite=None, forward=None):
        self.upstream = upstream.rstrip("/")
        self.rewrite = rewrite or (lambda method, path, status, headers, body: (status, headers, body))
        self.forward = forward or (lambda method, path: path)
        self.requests: list[tuple[str, str]] = []
        self.stop_event = threading.Event()   # set on exit: a slow body stops sending
        self.httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "HubProxy":
        handler = type("Handler", (_Handler,), {"proxy": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    proxy: HubProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _relay(self):
        proxy = self.proxy
        proxy.requests.append((self.command, self.path))
        length = int(self.headers.get("content-length") or 0)
        sent = self.rfile.read(length) if length else None
        up = urlsplit(proxy.upstream)
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP and k.lower() != "host"}
        conn.request(self.command, proxy.forward(self.command, self.path), body=sent, headers=headers)
        answer = conn.getresponse()
        body = answer.read()
        conn.close()
        got = {k: v for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP}
        if "location" in {k.lower() for k in got}:   # keep redirects on the proxy
            got = {k: v.replace(proxy.upstream, proxy.url) if k.lower() == "location" else v for k, v in got.items()}
        declared = answer.getheader("content-length")
        status, got, body = proxy.rewrite(self.command, self.path, answer.status, got, body)
        self.send_response(status)
        streamed = not isinstance(body, (bytes, bytearray))
        for k, v in got.items():
            if k.lower() != "content-length" or self.command == "HEAD" or streamed:   # else: the body's own
                self.send_header(k, v)
        if not streamed:
            if self.command == "HEAD":
                if declared is not None and not any(k.lower() == "content-length" for k in got):
                    self.send_header("Content-Length", declared)   # HEAD: the size of the GET's body
            else:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        self.send_header("Connection", "close")   # a streamed body: it ends when the connection does
        self.end_headers()
        self.wfile.flush()
        for chunk in body:
            if proxy.stop_event.is_set():
                break
            self.wfile.write(chunk)
            self.wfile.flush()
        self.close_connection = True

    def _handle(self):
        try:
            self._relay()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass   # the client hung up: what a bounded client does

    do_GET = do_HEAD = do_POST = do_PUT = _handle
