"""What every request passes before it reaches an endpoint: the API key, the overload limit, the body limit, and the
metrics that count it. A plain ASGI middleware: one function call a request, no body buffering.

- API key (``Settings.api_key``): every path but the health probes needs ``Authorization: Bearer <key>``, compared in
  constant time; otherwise 401.
- Overload: more than ``max_concurrency`` requests inside the server at once (probes and ``/metrics`` aside) get 503
  with ``Retry-After``, at once, instead of queueing without bound.
- Body size: a ``Content-Length`` over ``max_body_bytes`` gets 413 before a byte of the body is read;
  :func:`read_body` enforces the same limit on bodies sent without one (chunked).
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any, Awaitable, Callable

from .codec import PayloadTooLarge
from .metrics import Metrics
from .settings import Settings

__all__ = ["Guard", "read_body", "OPEN_PATHS", "json_error"]

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})  # health probes never need the key
UNCOUNTED_PATHS = OPEN_PATHS | {"/metrics"}  # never refused for overload, not counted as in flight

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def json_error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def too_large_message(size: int, limit: int, *, over: str = "") -> str:
    return (f"the request body has {over}{size:,} bytes, more than the {limit:,} a request may have "
            "(--max-body-bytes); send fewer rows per request")


async def read_body(receive_stream: Any, limit: int) -> bytes:
    """The whole body of a request (``request.stream()``), refusing it with 413 as soon as it passes ``limit``."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in receive_stream:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(too_large_message(size, limit, over="over "))
        chunks.append(chunk)
    return b"".join(chunks)


class Guard:
    """The ASGI middleware described in the module's docstring. ``endpoints`` are the paths counted by name in the
    metrics; any other path is counted as "unmatched" (so a scan of random URLs cannot grow the label set)."""

    def __init__(self, app: Any, *, settings: Settings, metrics: Metrics, endpoints: Callable[[], frozenset[str]]):
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.endpoints = endpoints
        self.in_flight = 0
        self._key = settings.api_key.encode() if settings.api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        status = 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        counted = path not in UNCOUNTED_PATHS
        try:
            refusal = self._refusal(scope, path, counted)
            if refusal is not None:
                await _respond(sending, *refusal)
                return
            if counted:
                self.in_flight += 1
                self.metrics.in_flight.inc()
            try:
                await self.app(scope, receive, sending)
            finally:
                if counted:
                    self.in_flight -= 1
                    self.metrics.in_flight.dec()
        finally:
            endpoint = path if path in self.endpoints() else "unmatched"
            self.metrics.observe(endpoint, status, time.perf_counter() - started)

    def _refusal(self, scope: Scope, path: str, counted: bool) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """(status, message, headers) for a request refused before it reaches an endpoint, else None."""
        headers = dict(scope.get("headers") or ())
        if self._key is not None and path not in OPEN_PATHS and not self._authorized(headers.get(b"authorization")):
            return (401, "this server needs an API key: send the header 'Authorization: Bearer <key>' with the key it "
                    "was started with (--api-key)", [(b"www-authenticate", b"Bearer")])
        if counted and self.in_flight >= self.settings.max_concurrency:
            return (503, f"the server is overloaded: {self.in_flight} requests are in progress, the most it takes at "
                    "once (--max-concurrency); retry in a moment", [(b"retry-after", b"1")])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                return 400, f"the Content-Length header {length[:20].decode(errors='replace')!r} is not a number", []
            if size > self.settings.max_body_bytes:
                return 413, too_large_message(size, self.settings.max_body_bytes), []
        return None

    def _authorized(self, header: bytes | None) -> bool:
        scheme, _, token = (header or b"").partition(b" ")
        # compare_digest takes time independent of where the bytes differ, so the key cannot be guessed byte by byte
        return hmac.compare_digest(token.strip(), self._key) and scheme.lower() == b"bearer"


async def _respond(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json_error(message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})

