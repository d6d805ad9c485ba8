"""ASGI middlewares that guard every route: body size, cross-site requests, security headers.

Why middlewares (each one line in server/http.py's ``build_app``) and not checks in the
routes: each rule must hold for every route, including ones added later, and two of them
must act before a route runs at all (a body too large must be refused before anything reads
it; a forged cross-site request before any handler changes anything).

* :class:`BodyLimit` — a request body over the size of its route (:data:`BODY_LIMITS`) is
  answered 413 before the application reads a byte of it: by its Content-Length, or for a
  chunked body by counting while it arrives (never more than the limit is held).
* :class:`CrossOriginGuard` — CSRF: a state-changing request (anything but GET, HEAD,
  OPTIONS) that a browser sent from another origin is refused with 403. The browser says
  where a request comes from in ``Sec-Fetch-Site`` (Fetch Metadata; sent to HTTPS and
  localhost origins) and ``Origin`` (sent with every cross-origin POST, over plain HTTP too);
  a page cannot forge or remove either. This is OWASP's recommended defence and the rule of
  Go 1.25's ``CrossOriginProtection``: ``Sec-Fetch-Site`` must be ``same-origin`` or ``none``
  (typed or bookmarked); ``same-site`` is refused too, so the office's own web site on a
  sibling host (``www.urzad.example.pl`` next to ``kolejka.urzad.example.pl``), which the
  ``SameSite=Lax`` cookie does not keep out, cannot post with a clerk's session; without
  it the ``Origin`` must be this server's own (its ``Host``, or ``[http] public_url``).
  A request with neither header is not from a browser (a script with HTTP Basic, curl):
  it carries no ambient cookie of anybody's, so it passes. No token is needed, so the
  pages' forms and scripts stay as they are; the libraries that add one (asgi-csrf,
  starlette-csrf) use a double-submit cookie, which a sibling host can overwrite, and need
  a signing secret, which is what migration 5 took out of the database.
* :class:`SecurityHeaders` — on every response: ``X-Content-Type-Options: nosniff``;
  ``Referrer-Policy`` (``no-referrer`` where the URL holds a ticket's token, else
  ``same-origin``); no framing by other sites (``frame-ancestors 'none'`` and
  ``X-Frame-Options: DENY``) except on the routes listed in :data:`FRAMEABLE`; and
  ``Cache-Control: no-store`` on pages and APIs that need a login (and on any response to a
  request that carried credentials), so a shared office PC's browser cache keeps no report,
  panel or export.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from protocol.messages import MAX_PAYLOAD_BYTES

DEFAULT_BODY_LIMIT = 16 * 1024
BODY_LIMITS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"^/api/counters/[^/]+/commands$"), MAX_PAYLOAD_BYTES),  # docs/protocol.md: 4096 bytes
    (re.compile(r"^/login$"), 4096),  # a name, a password, the page to go back to
    (re.compile(r"^/reports/pickups$"), 256 * 1024),  # a manager's pick-up list (server/pickup_web.py)
)
"""Per route, the largest body accepted; every other route takes :data:`DEFAULT_BODY_LIMIT`
(the admin page's forms and JSON are under 2 KiB). docs/deployment.md, "Security", lists them."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

LOGIN_PREFIXES = ("/clerk", "/reports", "/admin", "/api/counters", "/api/devices", "/login", "/logout", "/recepcja")
"""Routes that need a login (or are the login): always ``Cache-Control: no-store``."""
TOKEN_PREFIXES = ("/t/", "/api/tickets/", "/wizyta/")
"""Routes whose URL holds a ticket's token: ``Referrer-Policy: no-referrer``."""
FRAMEABLE: dict[str, str] = {}
"""Path prefix -> ``frame-ancestors`` sources, for a future public widget that other sites may
frame (e.g. ``{"/widget/": "https://www.urzad.example.pl"}``). Every other route: none."""


def _route_matches(path: str, prefixes: Iterable[str]) -> bool:
    return any(path == p.rstrip("/") or path.startswith(p if p.endswith("/") else p + "/") for p in prefixes)


async def _plain(send: Send, status: int, detail: str, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}, ensure_ascii=False).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """413 for a body over its route's limit, before the application reads it."""

    def __init__(
        self,
        app: ASGIApp,
        limits: tuple[tuple[re.Pattern[str], int], ...] = BODY_LIMITS,
        default: int = DEFAULT_BODY_LIMIT,
    ) -> None:
        self.app = app
        self.limits = limits
        self.default = default

    def limit_for(self, path: str) -> int:
        return next((size for pattern, size in self.limits if pattern.match(path)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        too_large = f"the request body is over {limit} bytes, the limit of {scope['path']}"
        # "Connection: close": the server stops reading what the client still sends.
        close = [(b"connection", b"close")]
        if length is not None:
            if not length.isdigit():
                await _plain(send, 400, "Content-Length is not a number", close)
            elif int(length) > limit:
                await _plain(send, 413, too_large, close)
            else:  # the HTTP parser (h11) delivers exactly Content-Length bytes, never more
                await self.app(scope, receive, send)
            return
        if "chunked" not in headers.get("transfer-encoding", "").lower():
            await self.app(scope, receive, send)  # no body
            return
        # Chunked: read up to the limit here, before the application sees any of it.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            size += len(message.get("body", b""))
            if size > limit:
                await _plain(send, 413, too_large, close)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: only the disconnect is left to hear

        await self.app(scope, replay, send)


class CrossOriginGuard:
    """403 for a state-changing request a browser sent from another origin (CSRF)."""

    def __init__(self, app: ASGIApp, trusted_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.trusted = {self._origin(o) for o in trusted_origins if o}

    @staticmethod
    def _origin(url: str) -> str:
        parts = urlsplit(url.strip().lower())
        default = {"http": 80, "https": 443}.get(parts.scheme)
        try:
            port = parts.port or default
        except ValueError:
            return ""
        return f"{parts.scheme}://{parts.hostname}:{port}"

    def allowed(self, scope: Scope) -> bool:
        if scope["method"] in SAFE_METHODS:
            return True
        headers = Headers(scope=scope)
        site = headers.get("sec-fetch-site")
        if site is not None:
            return site in ("same-origin", "none")
        origin = headers.get("origin")
        if origin is None:
            return True  # not a browser: no ambient cookie to ride on
        own = self._origin(f"{scope.get('scheme', 'http')}://{headers.get('host', '')}")
        return self._origin(origin) in (self.trusted | {own})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.allowed(scope):
            await _plain(
                send,
                403,
                "cross-site request refused: this form or call must come from the server's own pages "
                "/ żądanie z innej strony odrzucone",
            )
            return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """nosniff, referrer policy, no framing and no-store, on every response."""

    def __init__(self, app: ASGIApp, frameable: dict[str, str] | None = None) -> None:
        self.app = app
        self.frameable = FRAMEABLE if frameable is None else frameable

    def headers_for(self, scope: Scope) -> dict[str, str]:
        path = scope["path"]
        request = Headers(scope=scope)
        out = {
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer" if _route_matches(path, TOKEN_PREFIXES) else "same-origin",
        }
        ancestors = next((v for p, v in self.frameable.items() if path.startswith(p)), None)
        if ancestors is None:
            out["Content-Security-Policy"] = "frame-ancestors 'none'"
            out["X-Frame-Options"] = "DENY"
        else:
            out["Content-Security-Policy"] = f"frame-ancestors {ancestors}"
        if _route_matches(path, LOGIN_PREFIXES) or "authorization" in request or "cookie" in request:
            out["Cache-Control"] = "no-store"
        return out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers_for(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    if name == "Content-Security-Policy" and name in headers:
                        headers[name] = headers[name] + "; " + value
                    else:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
