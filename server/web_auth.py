"""Who is asking, for every web page and API that is not public.

Why one gate for all of them: the reports, the admin page and the clerk panel share one
login (``/login``) and one session cookie; a wrong password counts against the same
per-address budget whether it came through the login form or an HTTP Basic header. So
there is exactly one place that decides who someone is, and each router only says which
role it needs.

Roles are ranked: a ``clerk`` may use the clerk panel and send counter commands; a
``manager`` may also read the reports; an ``admin`` may also change the configuration.
A clerk login does not open the reports (they hold every clerk's figures).

What stays public, on purpose: ``/health``, ``/api/services``, ``/api/queues`` (what the
hall screen shows anyway) and a resident's own ticket page ``/t/<token>`` (reached from
the QR code on the ticket; the token is unguessable).
"""

from __future__ import annotations

import time
from collections import deque

from fastapi import HTTPException, Request, Response

from server.auth import SESSION_COOKIE, SESSION_HOURS, User, Users

MAX_FAILURES = 20  # wrong passwords per client address ...
FAILURE_WINDOW_S = 300  # ... within this many seconds, then 429 until the oldest ages out
RANK = {"clerk": 1, "manager": 2, "admin": 3}


def has_role(user: User, role: str) -> bool:
    """True if ``user`` may do what ``role`` may (admin ⊃ manager ⊃ clerk)."""
    return RANK.get(user.role, 0) >= RANK[role]


class LoginRequired(Exception):
    """A page needs a login: answered with a redirect to ``/login?next=<path>``."""

    def __init__(self, page: bool, path: str) -> None:
        self.page = page
        self.path = path


class WebAuth:
    """The session cookie and HTTP Basic check with the wrong-password throttle."""

    def __init__(self, users: Users) -> None:
        self.users = users  # thread-safe: it locks its SQLite connection itself, not the password checks
        self._failures: dict[str, deque[float]] = {}  # client address -> times of recent wrong passwords

    def throttled(self, request: Request) -> bool:
        """Too many wrong passwords from this address lately (slows down guessing)."""
        recent = self._failures.get(request.client.host if request.client else "")
        cutoff = time.monotonic() - FAILURE_WINDOW_S
        while recent and recent[0] < cutoff:
            recent.popleft()
        return bool(recent) and len(recent) >= MAX_FAILURES  # type: ignore[arg-type]

    def failed(self, request: Request) -> None:
        host = request.client.host if request.client else ""
        self._failures.setdefault(host, deque(maxlen=MAX_FAILURES)).append(time.monotonic())

    def verify(self, name: str, password: str) -> tuple[User | None, str | None]:
        """A login form's check: the user and a new session cookie value, or (None, None)."""
        user = self.users.verify(name, password)
        return user, self.users.session_cookie(user) if user else None

    def who(self, request: Request, basic: bool = True) -> User | None:
        """The signed-in user (cookie), or for scripts an HTTP Basic login; None if neither."""
        user = self.users.from_cookie(request.cookies.get(SESSION_COOKIE))
        if user is not None or not basic:
            return user
        header = request.headers.get("authorization")
        if not header:
            return None
        if self.throttled(request):
            raise HTTPException(429, "too many wrong passwords; try again in a few minutes")
        user = self.users.from_basic(header)
        if user is None:
            self.failed(request)
        return user

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


def set_session(request: Request, response: Response, cookie: str) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, and Secure when the page came over HTTPS
    (directly or through a reverse proxy that says so in X-Forwarded-Proto)."""
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_HOURS * 3600,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
