"""Bounds on every exchange with the Hub: one deadline per zoo Hub call, and a cap on the size of each answer.

huggingface_hub's timeouts apply to each socket read, so a server that sends a byte every few seconds never
times out, and one that streams without end fills the memory (an API answer) or the disk (a file). zoo.hub
runs each call (pull, push) inside `call()`, which sets:

* a deadline: $ZOO_HUB_TIMEOUT seconds (default 60), plus one second per HUB_MIN_RATE bytes of the files
  the call is about to transfer (`Call.expect`). At the deadline a watchdog shuts the call's sockets down,
  so even a read that is receiving one byte at a time ends;
* a cap on each answer's body: MAX_HUB_ANSWER_BYTES for API answers and the JSON files, the size the Hub
  declared for a model file while files download.

Both end the call with a HubLimitError. The bounds reach huggingface_hub through its public
`set_client_factory`: a client like its own (same hooks, redirects and headers) whose transport applies
them; outside a zoo call the transport passes everything through unchanged.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
import weakref
from contextlib import contextmanager
from urllib.parse import urlsplit

from zoo import limits
from zoo.errors import HubError


class HubLimitError(HubError):
    """A Hub call ran past its deadline or an answer past its size cap."""


def timeout_s() -> float:
    """$ZOO_HUB_TIMEOUT, checked: seconds, within limits.HUB_TIMEOUT_RANGE."""
    raw = os.environ.get("ZOO_HUB_TIMEOUT", "").strip()
    if not raw:
        return limits.HUB_TIMEOUT_S
    lo, hi = limits.HUB_TIMEOUT_RANGE
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not lo <= value <= hi:   # (nan fails too)
        raise HubError(f"ZOO_HUB_TIMEOUT must be a number of seconds from {lo:g} to {hi:g}, got {raw!r}")
    return value


class Call:
    """The bounds of one zoo Hub call; `expect()` widens them when files are about to be transferred."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.max_body = limits.MAX_HUB_ANSWER_BYTES
        self.expired = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._arm()

    def expect(self, sizes) -> None:
        """Files of these sizes come next: each answer may be as large as the largest, the deadline moves on."""
        sizes = list(sizes)
        with self._lock:
            self.max_body = max([limits.MAX_HUB_ANSWER_BYTES, *sizes])
            extra = sum(sizes) / limits.HUB_MIN_RATE
            self.seconds += extra
            self.deadline += extra
        self._arm()

    def check(self, url) -> None:
        if self.expired or time.monotonic() >= self.deadline:
            self._expire()
            host = urlsplit(str(url)).netloc or str(url)
            raise HubLimitError(f"{host} did not finish answering within {self.seconds:.0f} s (slow or stalled "
                                f"server); check your network or HF_ENDPOINT, or give it longer with "
                                f"ZOO_HUB_TIMEOUT=SECONDS")

    def too_large(self, url, size: int) -> HubLimitError:
        host = urlsplit(str(url)).netloc or str(url)
        return HubLimitError(f"{host} sent more than {self.max_body:,} bytes for {urlsplit(str(url)).path} "
                             f"({size:,} so far), more than it declared or than the Hub API ever sends; "
                             f"check HF_ENDPOINT")

    def _arm(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(max(0.0, self.deadline - time.monotonic()), self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        # shutdown (not close) wakes a read blocked in another thread: the byte-a-second server loses its reader
        self.expired = True
        for sock in list(_SOCKETS):   # a kept-alive connection may date from an earlier call
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()


_CURRENT: Call | None = None
_SOCKETS: weakref.WeakSet = weakref.WeakSet()   # every socket the guarded client opened
_INSTALL_LOCK = threading.Lock()
_INSTALLED = False


@contextmanager
def call():
    """Run a zoo Hub call under one deadline and the answer caps (a nested call shares the outer one)."""
    global _CURRENT
    install()
    if _CURRENT is not None:
        yield _CURRENT
        return
    current = _CURRENT = Call(timeout_s())
    try:
        yield current
    finally:
        _CURRENT = None
        current.close()


def install() -> None:
    """Make huggingface_hub's shared HTTP client one whose transport applies the bounds (once per process)."""
    global _INSTALLED
    with _INSTALL_LOCK:
        if _INSTALLED:
            return
        import httpx2
        from huggingface_hub import get_session, set_client_factory

        base = get_session()   # the client huggingface_hub would use: copy its hooks and behaviour
        hooks = {name: list(fns) for name, fns in base.event_hooks.items()}
        follow, timeout, headers = base.follow_redirects, base.timeout, base.headers.copy()

        def factory():
            return httpx2.Client(event_hooks=hooks, follow_redirects=follow, timeout=timeout, headers=headers,
                                 transport=_Transport())

        set_client_factory(factory)
        _INSTALLED = True


def _transport_class():
    import httpx2

    class Capped(httpx2.SyncByteStream):
        """A response body that stops at the call's cap and deadline."""

        def __init__(self, inner, current: Call, url):
            self.inner, self.current, self.url, self.seen = inner, current, url, 0

        def __iter__(self):
            try:
                for chunk in self.inner:
                    self.seen += len(chunk)
                    if self.seen > self.current.max_body:
                        raise self.current.too_large(self.url, self.seen)
                    self.current.check(self.url)
                    yield chunk
            except HubLimitError:
                raise
            except Exception:
                self.current.check(self.url)   # a read cut by the watchdog: say why
                raise

        def close(self):
            self.inner.close()

    class Transport(httpx2.BaseTransport):
        def __init__(self):
            self.inner = httpx2.HTTPTransport()

        def handle_request(self, request):
            current = _CURRENT
            if current is None:
                return self.inner.handle_request(request)
            current.check(request.url)
            left = max(0.01, current.deadline - time.monotonic())
            timeouts = dict(request.extensions.get("timeout") or {})
            request.extensions["timeout"] = {k: min(v, left) if v else left
                                             for k, v in {"connect": None, "read": None, "write": None,
                                                          "pool": None, **timeouts}.items()}
            outer = request.extensions.get("trace")

            def trace(name, info):   # remember each socket of the call, for the watchdog
                if name.endswith(("connect_tcp.complete", "start_tls.complete")):
                    sock = getattr(info.get("return_value"), "get_extra_info", lambda _: None)("socket")
                    if sock is not None:
                        _SOCKETS.add(sock)
                if outer is not None:
                    outer(name, info)

            request.extensions["trace"] = trace
            try:
                response = self.inner.handle_request(request)
            except HubLimitError:
                raise
            except Exception:
                current.check(request.url)
                raise
            declared = response.headers.get("content-length", "")
            if request.method != "HEAD" and declared.isdigit() and int(declared) > current.max_body:
                response.close()
                raise current.too_large(request.url, int(declared))
            return httpx2.Response(status_code=response.status_code, headers=response.headers,
                                   stream=Capped(response.stream, current, request.url),
                                   extensions=response.extensions)

        def close(self):
            self.inner.close()

    return Transport


def _Transport():
    global _TRANSPORT
    if _TRANSPORT is None:
        _TRANSPORT = _transport_class()
    return _TRANSPORT()


_TRANSPORT = None
