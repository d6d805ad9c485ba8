"""Web logins (clerk panel, reports, admin page), and ``numerek-users`` to manage them.

Why these choices:

* Passwords are hashed with Argon2id (argon2-cffi, the maintained binding of the
  Password Hashing Competition winner): a stolen database card from a Raspberry Pi does
  not give the passwords away. There is no default account and no default password: the
  office creates the first one with ``numerek-users add NAME --role manager``.
* The session is a cookie signed with itsdangerous (HMAC) by a random key that the
  schema migration stores in the ``settings`` table, so every installation has its own
  key and a restart keeps people logged in. The cookie carries only the login name and a
  fingerprint of the password hash: changing a password or removing the user ends every
  session of that user at once, because each request checks the user row again.
* Scripts may use HTTP Basic instead of the cookie (same password check).

Roles, each able to do what the one before it can: ``clerk`` uses the clerk panel and
sends counter commands over HTTP; ``manager`` also reads reports and exports; ``admin`` also
changes hours, limits and counter profiles on the admin page (server/web_auth.py checks them).
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import re
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer

ROLES = ("clerk", "manager", "admin")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MIN_PASSWORD = 10
SESSION_COOKIE = "numerek_session"
SESSION_HOURS = 12
_HASHER = PasswordHasher()
# A hash to verify against when the user does not exist, so a wrong name costs as long
# as a wrong password and does not reveal which names exist.
_DUMMY_HASH = _HASHER.hash("not-a-password-" + base64.b64encode(b"numerek").decode())


class AuthError(ValueError):
    """A user-management request that cannot be carried out (message says why)."""


@dataclass(frozen=True)
class User:
    name: str
    role: str


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


class Users:
    """The ``users`` table (created by schema migration 2 in server/store.py)."""

    def __init__(self, database: str | Path, migrate: bool = True) -> None:
        """``migrate=False`` for a server whose database failed its start-up check (logins then fail)."""
        from server.store import Store

        if migrate:
            Store(str(database)).close()  # bring the schema up to date (creates users/settings)
        self.conn = sqlite3.connect(str(database), check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout=5000")
        # One connection shared by the web server's threads: the lock covers only the SQL,
        # never the Argon2 check (~0.3 s), so one slow password check does not hold up
        # every clerk panel's cookie check behind it.
        self._lock = threading.Lock()

    def _sql(self, query: str, args: tuple = ()) -> tuple[list[tuple], int]:
        """Run one statement under the lock: its rows and the number of rows it changed."""
        with self._lock:
            cur = self.conn.execute(query, args)
            return cur.fetchall(), cur.rowcount

    def close(self) -> None:
        self.conn.close()

    def secret(self) -> str:
        return self._sql("SELECT value FROM settings WHERE key = 'session_secret'")[0][0][0]

    def add(self, name: str, role: str, password: str) -> User:
        if not NAME_PATTERN.match(name):
            raise AuthError("a login name is 2-32 characters: lower-case letters, digits, '.', '_' or '-'")
        if role not in ROLES:
            raise AuthError(f"role must be one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise AuthError(f"the password must have at least {MIN_PASSWORD} characters")
        password_hash = _HASHER.hash(password)
        try:
            self._sql(
                "INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
                (name, role, password_hash, time.time()),
            )
        except sqlite3.IntegrityError:
            raise AuthError(f"user {name!r} already exists") from None
        return User(name, role)

    def set_password(self, name: str, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise AuthError(f"the password must have at least {MIN_PASSWORD} characters")
        if self._sql("UPDATE users SET password_hash = ? WHERE name = ?", (_HASHER.hash(password), name))[1] == 0:
            raise AuthError(f"no user {name!r}")

    def remove(self, name: str) -> None:
        if self._sql("DELETE FROM users WHERE name = ?", (name,))[1] == 0:
            raise AuthError(f"no user {name!r}")

    def list(self) -> list[User]:
        return [User(n, r) for n, r in self._sql("SELECT name, role FROM users ORDER BY name")[0]]

    def _row(self, name: str) -> tuple[str, str] | None:
        rows = self._sql("SELECT role, password_hash FROM users WHERE name = ?", (name,))[0]
        return rows[0] if rows else None

    def verify(self, name: str, password: str) -> User | None:
        """The user if the password is right, else None (same cost whether the name exists or not)."""
        row = self._row(name) if len(name) <= 32 and len(password) <= 256 else None
        try:
            _HASHER.verify(row[1] if row else _DUMMY_HASH, password[:256])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return User(name, row[0]) if row else None

    # ------------------------------------------------------------------ sessions

    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret(), salt="numerek-session")

    def session_cookie(self, user: User) -> str:
        row = self._row(user.name)
        if row is None:
            raise AuthError(f"no user {user.name!r}")
        return self._serializer().dumps({"u": user.name, "f": _fingerprint(row[1])})

    def from_cookie(self, value: str | None) -> User | None:
        if not value or len(value) > 512:
            return None
        try:
            data = self._serializer().loads(value, max_age=SESSION_HOURS * 3600)
        except BadSignature:
            return None
        row = self._row(str(data.get("u", "")))
        if row is None or not hmac.compare_digest(_fingerprint(row[1]), str(data.get("f", ""))):
            return None
        return User(data["u"], row[0])

    def from_basic(self, header: str | None) -> User | None:
        if not header or not header.lower().startswith("basic ") or len(header) > 600:
            return None
        try:
            name, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return self.verify(name, password)


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
