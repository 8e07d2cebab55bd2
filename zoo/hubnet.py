"""Bounds on every exchange with the Hub: one deadline per zoo Hub call, and a cap on the size of each answer.

huggingface_hub's timeouts apply to each socket read, so a server that sends a byte every few seconds never
times out, and one that streams without end fills the memory or the disk. Inside `call()` (zoo.hub's pull and
push) the deadline is $ZOO_HUB_TIMEOUT seconds, moved on only by bytes that arrive (at most $ZOO_HUB_MAX_BYTES)
or that a push sends, never by a size the server declares (declaring 1 GiB stretched a 2 s timeout to hours); a
watchdog shuts the call's sockets down at the deadline; each answer's body is capped; a file's ETag, which
huggingface_hub makes a cache path of, must be a plain name. Each ends the call with a HubLimitError.
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

import httpx2
from httpx2._utils import get_environment_proxies   # what httpx itself reads (HTTPS_PROXY, NO_PROXY ...)
from huggingface_hub import get_session, set_client_factory

from zoo import limits
from zoo.errors import HubError


class HubLimitError(HubError):
    """A Hub call ran past its deadline, an answer past its size cap, or a header named a path."""


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
    """$ZOO_HUB_MAX_BYTES, checked: bytes, or a number with K, M, G or T (powers of 1024)."""
    raw = os.environ.get("ZOO_HUB_MAX_BYTES", "").strip()
    if not raw:
        return limits.HUB_MAX_BYTES
    match = re.fullmatch(r"(\d{1,20})\s*([KMGT]?)(?:i?B)?", raw, re.IGNORECASE)
    value = int(match[1]) * 1024 ** " KMGT".index(match[2].upper() or " ") if match else 0
    if not 1 <= value <= limits.HUB_MAX_BYTES_LIMIT:
        raise HubError(f"ZOO_HUB_MAX_BYTES must be a size from 1 byte to {limits.HUB_MAX_BYTES_LIMIT // 1024 ** 5} T "
                       f"(e.g. 500M or 20G), got {raw!r}")
    return value


def _host(url) -> str:
    return urlsplit(str(url)).netloc


class Call:
    """The bounds of one zoo Hub call: a deadline that only bytes moved move on, and a cap on each answer."""

    def __init__(self, seconds: float, most_bytes: int):
        self.start = time.monotonic()
        self.deadline = self.start + seconds
        self.max_bytes = most_bytes
        self.max_body = limits.MAX_HUB_ANSWER_BYTES
        self.credited = 0   # bytes received that moved the deadline on
        self.expired = False
        self._lock = threading.Lock()   # huggingface_hub downloads files in worker threads
        self._done = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    @property
    def seconds(self) -> float:
        """The call's time limit so far."""
        return self.deadline - self.start

    def expect(self, sizes) -> None:
        """Files of these declared sizes come next: each answer may be as large as the largest (the deadline stays)."""
        self.max_body = max([limits.MAX_HUB_ANSWER_BYTES, *sizes])

    def sending(self, sizes) -> None:
        """Local files of these sizes go up next (push): one more second per HUB_MIN_RATE bytes of them."""
        with self._lock:
            self.deadline += sum(sizes) / limits.HUB_MIN_RATE

    def received(self, n: int) -> None:
        """n bytes arrived: one more second per HUB_MIN_RATE bytes, for at most max_bytes bytes in all."""
        with self._lock:
            grant = max(0, min(n, self.max_bytes - self.credited))
            self.credited += grant
            self.deadline += grant / limits.HUB_MIN_RATE

    def check(self, url) -> None:
        """Raise HubLimitError once the deadline has passed."""
        if self.expired or time.monotonic() >= self.deadline:
            self._expire()
            raise HubLimitError(f"{_host(url)} did not finish answering within {self.seconds:.0f} s (slow or stalled "
                                f"server); check your network or HF_ENDPOINT, or give it longer with "
                                f"ZOO_HUB_TIMEOUT=SECONDS")

    def _watch(self) -> None:
        # wakes at the deadline; bytes that arrived meanwhile may have moved it on, so it only expires once passed
        while not self._done.wait(max(0.0, self.deadline - time.monotonic())):
            if time.monotonic() >= self.deadline:
                self._expire()
                return

    def _expire(self) -> None:
        # shutdown (not close) wakes a read blocked in another thread: the byte-a-second server loses its reader
        self.expired = True
        for sock in list(_SOCKETS):   # a kept-alive connection may date from an earlier call
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """End the call; its watchdog must not shut down a later call's sockets."""
        self._done.set()


# huggingface_hub stores a file as blobs/<etag>: a plain ETag only ('../x' or '/x' named a file outside the cache)
_ETAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=:-]{0,255}")
_CURRENT: Call | None = None
_SOCKETS: weakref.WeakSet = weakref.WeakSet()   # every socket the bounded client opened


@contextmanager
def call():
    """Run a zoo Hub call under one deadline and the answer caps."""
    global _CURRENT
    current = _CURRENT = Call(timeout_s(), max_bytes())
    try:
        yield current
    finally:
        _CURRENT = None
        current.close()


def _remember_socket(name: str, info: dict) -> None:
    # an httpcore trace hook: the watchdog shuts down every socket a call opened
    if name.endswith(("connect_tcp.complete", "start_tls.complete")):
        sock = info["return_value"].get_extra_info("socket")
        if sock is not None:
            _SOCKETS.add(sock)


class _Capped(httpx2.SyncByteStream):
    """A response body that stops at the call's cap and deadline."""

    def __init__(self, inner, current: Call, url):
        self.inner, self.current, self.url = inner, current, url

    def __iter__(self):
        seen = 0
        try:
            for chunk in self.inner:
                seen += len(chunk)
                self.current.received(len(chunk))
                if seen > self.current.max_body:
                    raise HubLimitError(f"{_host(self.url)} sent more than {self.current.max_body:,} bytes for "
                                        f"{self.url.path} ({seen:,} so far), more than it declared or than the Hub "
                                        f"API ever sends; check HF_ENDPOINT")
                self.current.check(self.url)
                yield chunk
        except HubLimitError:
            raise
        except Exception:
            self.current.check(self.url)   # a read cut by the watchdog: say why
            raise

    def close(self):
        self.inner.close()


class _Transport(httpx2.HTTPTransport):
    """httpx's own transport, bounded while a zoo Hub call runs."""

    def handle_request(self, request):
        current = _CURRENT
        if current is None:
            return super().handle_request(request)
        current.check(request.url)
        request.extensions["trace"] = _remember_socket
        try:
            response = super().handle_request(request)
        except Exception:
            current.check(request.url)   # a connection cut by the watchdog: say why
            raise
        # HEAD answers are the file metadata huggingface_hub makes paths from; it prefers the linked ETag
        header = "x-linked-etag" if "x-linked-etag" in response.headers else "etag"
        etag = response.headers.get(header) if request.method == "HEAD" else None
        if etag is not None and not _ETAG.fullmatch(etag.lstrip("W/").strip('"')):   # as huggingface_hub reads it
            response.close()
            raise HubLimitError(f"{_host(request.url)} answered {header} {etag[:80]!r} for {request.url.path}, which "
                                f"no Hub sends (it would name a file outside the cache); check HF_ENDPOINT")
        response.stream = _Capped(response.stream, current, request.url)
        return response


def _install() -> None:
    """Make huggingface_hub's shared client one like its own (hooks, redirects, headers) with the bounded transport."""
    base = get_session()
    options = {"event_hooks": {name: list(fns) for name, fns in base.event_hooks.items()}, "timeout": base.timeout,
               "follow_redirects": base.follow_redirects, "headers": base.headers.copy()}
    def client() -> httpx2.Client:
        # a client given its own transport ignores HTTP(S)_PROXY and NO_PROXY: mount them again, bounded as well
        mounts = {pattern: url and _Transport(proxy=url) for pattern, url in get_environment_proxies().items()}
        return httpx2.Client(**options, transport=_Transport(), mounts=mounts)

    set_client_factory(client)


_install()   # once, on import (zoo.hub imports this module for its first Hub call): outside a call it changes nothing
