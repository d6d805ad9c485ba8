"""Web logins (clerk panel, reports, admin page), and ``numerek-users`` to manage them.

Why these choices:

* Passwords are hashed with Argon2id (argon2-cffi, the maintained binding of the
  Password Hashing Competition winner): a stolen database card from a Raspberry Pi does
  not give the passwords away. There is no default account and no default password: the
  office creates the first one with ``numerek-users add NAME --role manager``.
* The parameters (:data:`ARGON2`) are OWASP's recommended minimum for Argon2id: 19 MiB of
  memory, 2 passes, 1 lane. argon2-cffi's default (64 MiB, 3 passes, 4 lanes) took ~0.3 s
  and 64 MiB per check, so 100 parallel wrong logins grew the server by over 1 GiB on a
  Pi with 2-4 GB. With 19 MiB and at most one check per core at a time (:class:`HashGate`)
  a flood of logins costs at most ``cores x 19 MiB``; docs/deployment.md ("Security") has
  the time per check measured here and under a one-core CPU quota. Hashes made with older
  parameters still verify (the parameters are in the hash) and are replaced by a hash with
  the current ones at the user's next successful login.
* Sessions live on the server: the cookie carries a random token (256 bits), the
  ``sessions`` table only its SHA-256, so neither a backup nor a look at the database gives
  a cookie that works. Signing out deletes the row (the old cookie stops working at once);
  a session ends after ``[http] session_idle_min`` unused or ``session_max_h`` after the
  login; a new password or a removed user ends all of that user's sessions. There is no
  signing key to keep secret (schema migration 5 removed the old one).
* Scripts may use HTTP Basic instead of the cookie (same password check, same throttle;
  server/web_auth.py).

Roles, each able to do what the one before it can: ``clerk`` uses the clerk panel and
sends counter commands over HTTP; ``manager`` also reads reports and exports; ``admin`` also
changes hours, limits and counter profiles on the admin page (server/web_auth.py checks them).
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import os
import re
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from argon2 import Parameters, PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ROLES = ("clerk", "manager", "admin")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 256
SESSION_COOKIE = "numerek_session"
SESSION_IDLE_MIN = 60  # defaults of [http] session_idle_min / session_max_h (server/config.py)
SESSION_MAX_H = 12
SEEN_EVERY_S = 60  # a session's "last used" is written at most this often (not a write per request)

ARGON2 = Parameters(
    type=Type.ID,
    version=19,
    salt_len=16,
    hash_len=32,
    time_cost=2,
    memory_cost=19 * 1024,  # KiB
    parallelism=1,
)
"""OWASP's Argon2id minimum (m=19 MiB, t=2, p=1), sized for a Raspberry Pi: see the module doc."""
HASHER = PasswordHasher.from_parameters(ARGON2)
# A hash to verify against when the user does not exist, so a wrong name costs as long
# as a wrong password and does not reveal which names exist.
_DUMMY_HASH = HASHER.hash("not-a-password-" + base64.b64encode(b"numerek").decode())

T = TypeVar("T")


class AuthError(ValueError):
    """A user-management request that cannot be carried out (message says why)."""


class Busy(RuntimeError):
    """Every password-check slot and its waiting line are taken: answer 503 now, hash nothing."""


@dataclass(frozen=True)
class User:
    name: str
    role: str


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class HashGate:
    """At most one Argon2 check per core at a time, and a short waiting line; beyond it, :class:`Busy`.

    Why its own threads: every check allocates 19 MiB, and glibc keeps freed memory of that
    size in the arena of the thread that used it. Checks run only on these ``workers``
    threads, so a flood of logins touches at most ``workers`` arenas instead of one per web
    thread (FastAPI has 40), and the memory it can hold on to stays ``workers x 19 MiB``.
    The caller (a web thread) waits for its check; with at most ``workers + waiting``
    callers at once, the other web threads stay free for pages like ``/api/queues``.
    """

    def __init__(self, workers: int | None = None, waiting: int | None = None) -> None:
        self.workers = workers or max(1, _cores() - 1)
        self.waiting = self.workers * 2 if waiting is None else waiting
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="argon2")
        self._lock = threading.Lock()
        self._taken = 0

    def run(self, fn: Callable[[], T]) -> T:
        with self._lock:
            if self._taken >= self.workers + self.waiting:
                raise Busy("too many password checks at once")
            self._taken += 1
        try:
            return self._pool.submit(fn).result()
        finally:
            with self._lock:
                self._taken -= 1


def _direct(fn: Callable[[], T]) -> T:
    return fn()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Users:
    """The ``users`` and ``sessions`` tables (schema migrations 2 and 5 in server/store.py)."""

    def __init__(
        self,
        database: str | Path,
        *,
        idle_min: int = SESSION_IDLE_MIN,
        max_h: int = SESSION_MAX_H,
        migrate: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if migrate:
            from server.store import Store

            Store(str(database)).close()  # bring the schema up to date (users, sessions)
        self.conn = sqlite3.connect(str(database), check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout=5000")
        # One connection shared by the web server's threads: the lock covers only the SQL,
        # never the Argon2 check, so one slow password check does not hold up every clerk
        # panel's session check behind it. This connection writes only users and sessions.
        self._lock = threading.Lock()
        self.idle_s = idle_min * 60
        self.max_s = max_h * 3600
        self.clock = clock  # wall time: sessions outlive a restart, so their times are in the file

    def _sql(self, query: str, args: tuple = ()) -> tuple[list[tuple], int]:
        """Run one statement under the lock: its rows and the number of rows it changed."""
        with self._lock:
            cur = self.conn.execute(query, args)
            return cur.fetchall(), cur.rowcount

    def close(self) -> None:
        self.conn.close()

    def add(self, name: str, role: str, password: str) -> User:
        if not NAME_PATTERN.match(name):
            raise AuthError("a login name is 2-32 characters: lower-case letters, digits, '.', '_' or '-'")
        if role not in ROLES:
            raise AuthError(f"role must be one of {', '.join(ROLES)}")
        self._check_new_password(password)
        password_hash = HASHER.hash(password)
        try:
            self._sql(
                "INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
                (name, role, password_hash, time.time()),
            )
        except sqlite3.IntegrityError:
            raise AuthError(f"user {name!r} already exists") from None
        return User(name, role)

    @staticmethod
    def _check_new_password(password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise AuthError(f"the password must have at least {MIN_PASSWORD} characters")
        if len(password) > MAX_PASSWORD:
            raise AuthError(f"the password may have at most {MAX_PASSWORD} characters")

    def set_password(self, name: str, password: str) -> None:
        """A new password; every session of the user ends (someone may have used the old one)."""
        self._check_new_password(password)
        if self._sql("UPDATE users SET password_hash = ? WHERE name = ?", (HASHER.hash(password), name))[1] == 0:
            raise AuthError(f"no user {name!r}")
        self.end_sessions(name)

    def remove(self, name: str) -> None:
        if self._sql("DELETE FROM users WHERE name = ?", (name,))[1] == 0:
            raise AuthError(f"no user {name!r}")
        self.end_sessions(name)

    def list(self) -> list[User]:
        return [User(n, r) for n, r in self._sql("SELECT name, role FROM users ORDER BY name")[0]]

    def _row(self, name: str) -> tuple[str, str] | None:
        rows = self._sql("SELECT role, password_hash FROM users WHERE name = ?", (name,))[0]
        return rows[0] if rows else None

    def account(self, name: str) -> tuple[str, str] | None:
        """(role, stored hash) of ``name``, or None: tells whether a remembered check still holds."""
        return self._row(name) if len(name) <= 32 else None

    def verify(self, name: str, password: str, gate: Callable[[Callable[[], bool]], bool] = _direct) -> User | None:
        """The user if the password is right, else None (same cost whether the name exists or not).

        ``gate`` runs the Argon2 check (the web passes :meth:`HashGate.run`, which may raise
        :class:`Busy`). A right password stored with older parameters is hashed again now.
        """
        row = self._row(name) if len(name) <= 32 and len(password) <= MAX_PASSWORD else None
        stored = row[1] if row else _DUMMY_HASH

        def check() -> bool:
            try:
                return HASHER.verify(stored, password[:MAX_PASSWORD])
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        if not gate(check) or row is None:
            return None
        if HASHER.check_needs_rehash(stored):
            # Only if nobody changed the password meanwhile (the WHERE names the old hash).
            self._sql(
                "UPDATE users SET password_hash = ? WHERE name = ? AND password_hash = ?",
                (HASHER.hash(password), name, stored),
            )
        return User(name, row[0])

    # ------------------------------------------------------------------ sessions

    def start_session(self, user: User) -> str:
        """A new session for ``user``: the cookie's token (only its hash is stored)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            # Sessions that have ended by time go when new ones start: the table stays small.
            self.conn.execute(
                "DELETE FROM sessions WHERE created_at < ? OR seen_at < ?", (now - self.max_s, now - self.idle_s)
            )
            try:
                self.conn.execute(
                    "INSERT INTO sessions (token_hash, user, created_at, seen_at) "
                    "SELECT ?, name, ?, ? FROM users WHERE name = ?",
                    (_token_hash(token), now, now, user.name),
                )
            except sqlite3.IntegrityError:  # pragma: no cover - 256 random bits do not repeat
                raise AuthError("could not start a session") from None
        return token

    def from_session(self, token: str | None) -> User | None:
        """The user of a live session, or None (unknown, signed out, idle too long, too old)."""
        if not token or len(token) > 128:
            return None
        key = _token_hash(token)
        rows = self._sql(
            "SELECT s.user, u.role, s.created_at, s.seen_at FROM sessions s JOIN users u ON u.name = s.user "
            "WHERE s.token_hash = ?",
            (key,),
        )[0]
        if not rows:
            return None
        name, role, created, seen = rows[0]
        now = self.clock()
        if now - created > self.max_s or now - seen > self.idle_s:
            self._sql("DELETE FROM sessions WHERE token_hash = ?", (key,))
            return None
        if now - seen > SEEN_EVERY_S:
            self._sql("UPDATE sessions SET seen_at = ? WHERE token_hash = ?", (now, key))
        return User(name, role)

    def end_session(self, token: str | None) -> None:
        if token and len(token) <= 128:
            self._sql("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))

    def end_sessions(self, name: str) -> int:
        """End every session of ``name``; how many there were."""
        return self._sql("DELETE FROM sessions WHERE user = ?", (name,))[1]

    def sessions(self, name: str) -> int:
        return self._sql("SELECT COUNT(*) FROM sessions WHERE user = ?", (name,))[0][0][0]


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """``Authorization: Basic ...`` -> (name, password), or None if it is not one."""
    if not header or not header.lower().startswith("basic ") or len(header) > 600:
        return None
    try:
        name, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (name, password) if sep else None


# ---------------------------------------------------------------------- numerek-users


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Hasło / Password: ")
    if getpass.getpass("Powtórz / Repeat: ") != first:
        raise AuthError("the passwords differ")
    return first


def main(argv: list[str] | None = None) -> int:
    """``numerek-users``: add, list, remove web logins and change their passwords."""
    from server.config import EXAMPLE_CONFIG, ConfigError, load_config

    p = argparse.ArgumentParser(
        prog="numerek-users",
        description="Manage the web logins: clerk (clerk panel), manager (reports), admin (configuration).",
    )
    p.add_argument("--config", default=str(EXAMPLE_CONFIG), help="site config (its storage.database is used)")
    p.add_argument("--database", help="override the database file")
    sub = p.add_subparsers(dest="cmd", required=True)
    add = sub.add_parser("add", help="create a login (asks for the password)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="manager")
    add.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    pw = sub.add_parser("passwd", help="set a new password")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")
    rm = sub.add_parser("remove", help="delete a login (ends its sessions)")
    rm.add_argument("name")
    out = sub.add_parser("sign-out", help="end every web session of a login (e.g. a lost laptop)")
    out.add_argument("name")
    sub.add_parser("list", help="show logins and roles")
    args = p.parse_args(argv)
    try:
        database = args.database or load_config(args.config).storage.database
        users = Users(database)
    except (ConfigError, sqlite3.Error, RuntimeError) as exc:
        print(f"numerek-users: {exc}", file=sys.stderr)
        return 2
    try:
        if args.cmd == "add":
            user = users.add(args.name, args.role, _read_password(args))
            print(f"added {user.name} ({user.role})")
        elif args.cmd == "passwd":
            users.set_password(args.name, _read_password(args))
            print(f"password changed for {args.name}")
        elif args.cmd == "remove":
            users.remove(args.name)
            print(f"removed {args.name}")
        elif args.cmd == "sign-out":
            if users.account(args.name) is None:
                raise AuthError(f"no user {args.name!r}")
            print(f"ended {users.end_sessions(args.name)} session(s) of {args.name}")
        else:
            for u in users.list():
                print(f"{u.name}\t{u.role}")
    except AuthError as exc:
        print(f"numerek-users: {exc}", file=sys.stderr)
        return 1
    finally:
        users.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
