"""Bounds on every exchange with the Hub: one deadline per zoo Hub call, and a cap on the size of each answer.

huggingface_hub's timeouts apply to each socket read, so a server that sends a byte every few seconds never
times out, and one that streams without end fills the memory (an API answer) or the disk (a file). zoo.hub
runs each call (pull, push) inside `call()`, which sets:

* a deadline: $ZOO_HUB_TIMEOUT seconds (default 60), moved on by one second per HUB_MIN_RATE bytes that
  actually arrive (at most $ZOO_HUB_MAX_BYTES of them) or that a push sends. A size the server declares
  never moves it: a server that declared 1 GiB and sent a byte a second stretched a 2 s timeout to hours.
  At the deadline a watchdog shuts the call's sockets down, so even a read receiving one byte at a time ends;
* a cap on each answer's body: MAX_HUB_ANSWER_BYTES for API answers and the JSON files, the size the Hub
  declared for a model file while files download (no more than $ZOO_HUB_MAX_BYTES in all, checked by zoo.hub);
* a plain name in the header huggingface_hub turns into a cache path, a file's ETag (blobs/<ETag>; it checks
  the commit id of snapshots/<commit>/ itself).

Each ends the call with a HubLimitError. The bounds reach huggingface_hub through its public
`set_client_factory`: a client like its own (same hooks, redirects and headers) whose transport applies
them; outside a zoo call the transport passes everything through unchanged.
"""

from __future__ import annotations

import math
import os
import re
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


class HubAnswerError(HubLimitError):
    """An answer no Hub gives: a header that would name a path outside the cache."""


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


def max_bytes() -> int:
    """$ZOO_HUB_MAX_BYTES, checked: the most bytes of files one zoo call downloads, a number of bytes or one with
    K, M, G or T (powers of 1024); default limits.HUB_MAX_BYTES."""
    raw = os.environ.get("ZOO_HUB_MAX_BYTES", "").strip()
    if not raw:
        return limits.HUB_MAX_BYTES
    match = re.fullmatch(r"(\d{1,20})\s*([KMGT]?)(?:i?B)?", raw, re.IGNORECASE)
    value = int(match[1]) * 1024 ** " KMGT".index(match[2].upper() or " ") if match else 0
    if not 1 <= value <= limits.HUB_MAX_BYTES_LIMIT:
        raise HubError(f"ZOO_HUB_MAX_BYTES must be a size from 1 byte to {limits.HUB_MAX_BYTES_LIMIT // 1024 ** 5} T "
                       f"(e.g. 500M or 20G), got {raw!r}")
    return value


class Call:
    """The bounds of one zoo Hub call. The deadline starts at $ZOO_HUB_TIMEOUT and moves on only for bytes
    that arrive (`received`, up to $ZOO_HUB_MAX_BYTES) or go up (`sending`), never for sizes a server declares."""

    def __init__(self, seconds: float, most_bytes: int | None = None):
        self.start = time.monotonic()
        self.deadline = self.start + seconds
        self.max_bytes = limits.HUB_MAX_BYTES if most_bytes is None else most_bytes
        self.max_body = limits.MAX_HUB_ANSWER_BYTES
        self.credited = 0   # bytes received that moved the deadline on
        self.expired = self._closed = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._arm()

    @property
    def seconds(self) -> float:
        """The call's time limit so far."""
        return self.deadline - self.start

    def expect(self, sizes) -> None:
        """Files the Hub declared these sizes for come next: each answer may be as large as the largest. The
        deadline stays: a declared size is the server's word, and only bytes that arrive move it on."""
        with self._lock:
            self.max_body = max([limits.MAX_HUB_ANSWER_BYTES, *sizes])

    def sending(self, sizes) -> None:
        """Local files of these sizes go up next (push): one more second per HUB_MIN_RATE bytes of them."""
        with self._lock:
            self.deadline += sum(sizes) / limits.HUB_MIN_RATE
        self._arm()

    def received(self, n: int) -> None:
        """n bytes arrived: one more second per HUB_MIN_RATE bytes, for at most max_bytes bytes in all."""
        with self._lock:
            grant = max(0, min(n, self.max_bytes - self.credited))
            self.credited += grant
            self.deadline += grant / limits.HUB_MIN_RATE

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
            self._timer = threading.Timer(max(0.0, self.deadline - time.monotonic()), self._on_timer)
            self._timer.daemon = True
            self._timer.start()

    def _on_timer(self) -> None:
        if self._closed:
            return
        if time.monotonic() < self.deadline:   # bytes arrived meanwhile and moved the deadline on
            self._arm()
        else:
            self._expire()

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
            self._closed = True   # a timer already firing must not shut down a later call's sockets
            if self._timer is not None:
                self._timer.cancel()


# huggingface_hub stores a file as blobs/<etag>: a plain ETag only ('../x' or '/x' named a file outside the cache)
_ETAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=:-]{0,255}")


def path_header_problem(headers) -> str | None:
    """The ETag header of a file's metadata answer when huggingface_hub would put it in a path unsafely, or None."""
    for name in ("x-linked-etag", "etag"):
        value = headers.get(name)
        if value is not None:
            etag = value.lstrip("W/").strip('"')   # as huggingface_hub reads it
            if not _ETAG.fullmatch(etag):
                return f"{name} {value[:80]!r}"
            break   # huggingface_hub uses the linked ETag when there is one
    return None


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
    current = _CURRENT = Call(timeout_s(), max_bytes())
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
                    self.current.received(len(chunk))
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
            problem = path_header_problem(response.headers) if request.method == "HEAD" else None
            if problem is not None:   # HEAD answers are the file metadata huggingface_hub makes paths from
                response.close()
                host = urlsplit(str(request.url)).netloc
                raise HubAnswerError(f"{host} answered {problem} for {request.url.path}, which no Hub sends (it "
                                     f"would name a file outside the cache); check HF_ENDPOINT")
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
