"""Who is asking, for every web page and API that is not public.

Why one gate for all of them: the reports, the admin page and the clerk panel share one
login (``/login``) and one session (server/auth.py); a password check counts against the
same budgets whether it came through the login form or an HTTP Basic header. So there is
exactly one place that decides who someone is, and each router only says which role it needs.

Roles are ranked: a ``clerk`` may use the clerk panel and send counter commands; a
``manager`` may also read the reports; an ``admin`` may also change the configuration.
A clerk login does not open the reports (they hold every clerk's figures).

What stays public, on purpose: ``/health``, ``/api/services``, ``/api/queues`` (what the
hall screen shows anyway) and a resident's own ticket page ``/t/<token>`` (reached from
the QR code on the ticket; the token is unguessable).

Password guessing, and floods of it, are stopped before any hashing:

1. a budget per client address and one per login name (``[http] login_per_address``,
   ``login_per_account``), kept by the ``limits`` library's moving windows. Each attempt
   takes its place in the window *before* its check (one atomic step under the window's
   lock), so 100 parallel guesses get at most the budget checked, not whatever raced past a
   "too many failures?" test; over it: 429 with ``Retry-After``;
2. the Argon2 checks themselves go through :class:`server.auth.HashGate`: one per core at a
   time and a short waiting line; beyond it: 503 at once.

The client address is the one uvicorn gives: the socket's peer, or for a request through a
trusted reverse proxy (``[http] trusted_proxies``) the address the proxy names in
X-Forwarded-For. IPv6 clients are counted per /64, the block one household or phone gets.

Scripts may send HTTP Basic on every request: a right name and password is remembered in
memory for :data:`BASIC_REMEMBER_S` (as an HMAC of the password under a key made at start,
never the password), as long as the stored hash has not changed, so a script polling every
second costs one Argon2 check per few minutes, not one per request.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import OrderedDict
from ipaddress import IPv6Address, ip_address, ip_network

from fastapi import HTTPException, Request, Response
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from server.auth import SESSION_COOKIE, Busy, HashGate, User, Users, parse_basic
from server.config import Http

RANK = {"clerk": 1, "manager": 2, "admin": 3}
BASIC_REMEMBER_S = 300
BASIC_REMEMBER_MAX = 256
BUSY_RETRY_S = 5


def has_role(user: User, role: str) -> bool:
    """True if ``user`` may do what ``role`` may (admin ⊃ manager ⊃ clerk)."""
    return RANK.get(user.role, 0) >= RANK[role]


class LoginRequired(Exception):
    """A page needs a login: answered with a redirect to ``/login?next=<path>``."""

    def __init__(self, page: bool, path: str) -> None:
        self.page = page
        self.path = path


def client_key(request: Request) -> str:
    """The address a budget is kept for: the client's IP, an IPv6 client's /64."""
    host = request.client.host if request.client else ""
    try:
        address = ip_address(host)
    except ValueError:
        return host
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ip_network(f"{address}/64", strict=False))
    return str(address)


class WebAuth:
    """The session cookie and HTTP Basic check, with the budgets and the hash gate."""

    def __init__(self, users: Users, http: Http | None = None, gate: HashGate | None = None) -> None:
        http = http or Http()
        self.users = users  # thread-safe: it locks its SQLite connection itself, not the password checks
        self.gate = gate or HashGate()
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_address = parse_many(http.login_per_address)
        self._per_account = parse_many(http.login_per_account)
        self._remember_key = secrets.token_bytes(32)
        self._remembered: OrderedDict[tuple[str, bytes], tuple[str, float]] = OrderedDict()
        self._remembered_lock = threading.Lock()

    # ------------------------------------------------------------------ password checks

    def _take(self, items: list[RateLimitItem], kind: str, key: str, message: str) -> None:
        for item in items:
            if not self._limiter.hit(item, kind, key):
                reset = self._limiter.get_window_stats(item, kind, key).reset_time
                wait = max(1, math.ceil(reset - time.time()))
                raise HTTPException(429, message, headers={"Retry-After": str(wait)})

    def check_password(self, request: Request, name: str, password: str) -> User | None:
        """The user if the password is right. Raises 429 (over a budget) or 503 (too many
        checks at once) *before* hashing anything."""
        name = name[:64]
        self._take(
            self._per_address,
            "login-address",
            client_key(request),
            "too many password attempts from this address; try again later / za dużo prób logowania",
        )
        self._take(
            self._per_account,
            "login-account",
            name.lower(),
            "too many password attempts for this login; try again later / za dużo prób logowania na to konto",
        )
        try:
            return self.users.verify(name, password, gate=self.gate.run)
        except Busy:
            raise HTTPException(
                503,
                "the server is checking too many passwords at once; try again in a few seconds",
                headers={"Retry-After": str(BUSY_RETRY_S)},
            ) from None

    def login(self, request: Request, name: str, password: str) -> tuple[User, str] | None:
        """A login form's check: the user and a new session's token, or None."""
        user = self.check_password(request, name, password)
        return (user, self.users.start_session(user)) if user else None

    def logout(self, request: Request) -> None:
        """End the request's session on the server: its cookie stops working at once."""
        self.users.end_session(request.cookies.get(SESSION_COOKIE))

    # ------------------------------------------------------------------ HTTP Basic

    def _digest(self, name: str, password: str) -> tuple[str, bytes]:
        return name, hmac.new(self._remember_key, password.encode("utf-8", "replace"), hashlib.sha256).digest()

    def _recall(self, name: str, password: str) -> User | None:
        key = self._digest(name, password)
        with self._remembered_lock:
            found = self._remembered.get(key)
        if found is None or found[1] < time.monotonic():
            return None
        account = self.users.account(name)
        if account is None or not hmac.compare_digest(account[1], found[0]):
            return None  # removed, or a new password since: check again
        return User(name, account[0])

    def _remember(self, name: str, password: str) -> None:
        account = self.users.account(name)
        if account is None:
            return
        with self._remembered_lock:
            self._remembered[self._digest(name, password)] = (account[1], time.monotonic() + BASIC_REMEMBER_S)
            while len(self._remembered) > BASIC_REMEMBER_MAX:
                self._remembered.popitem(last=False)

    def basic(self, request: Request) -> User | None:
        credentials = parse_basic(request.headers.get("authorization"))
        if credentials is None:
            return None
        user = self._recall(*credentials)
        if user is None:
            user = self.check_password(request, *credentials)
            if user is not None:
                self._remember(*credentials)
        return user

    # ------------------------------------------------------------------ the gate

    def who(self, request: Request, basic: bool = True) -> User | None:
        """The signed-in user (session cookie), or for scripts an HTTP Basic login; None if neither."""
        user = self.users.from_session(request.cookies.get(SESSION_COOKIE))
        if user is not None or not basic:
            return user
        return self.basic(request)

    def page(self, request: Request, role: str, basic: bool = True) -> User:
        """For an HTML page: redirect to the login without a session, 403 with the wrong role."""
        user = self.who(request, basic=basic)
        if user is None:
            raise LoginRequired(True, request.url.path + ("?" + request.url.query if request.url.query else ""))
        if not has_role(user, role):
            raise HTTPException(403, f"this page needs a {role} login / ta strona wymaga konta: {role}")
        return user

    def api(self, request: Request, role: str, basic: bool = True) -> User:
        """For a JSON endpoint: 401 without a login, 403 with the wrong role."""
        user = self.who(request, basic=basic)
        if user is None:
            raise HTTPException(
                401, f"{role} login required: sign in at /login", headers={"WWW-Authenticate": 'Basic realm="numerek"'}
            )
        if not has_role(user, role):
            raise HTTPException(403, f"{role} login required")
        return user

    def set_session(self, request: Request, response: Response, token: str) -> None:
        """The session cookie: HttpOnly, SameSite=Lax, and Secure when the page came over HTTPS
        (directly or through a trusted reverse proxy that says so in X-Forwarded-Proto). It
        lasts no longer than the session can (``[http] session_max_h``)."""
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=self.users.max_s,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
