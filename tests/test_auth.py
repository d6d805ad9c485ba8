"""Web logins: ``numerek-users`` and the password/session checks behind the clerk panel, reports and admin page."""

from __future__ import annotations

import base64
import sqlite3
import subprocess

from server.auth import Users
from tests.harness import run_tool


def users_cli(db, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return run_tool("server.auth", "--database", str(db), *args, input=stdin, timeout=60)


def test_a_new_database_has_no_login_at_all(tmp_path):
    users = Users(tmp_path / "numerek.db")
    assert users.list() == []
    assert users.verify("admin", "admin") is None
    assert users.verify("manager", "") is None


def test_added_manager_signs_in_only_with_the_right_password(tmp_path):
    db = tmp_path / "numerek.db"
    added = users_cli(db, "add", "ewa.k", "--role", "manager", "--password-stdin", stdin="Bardzo-tajne-7\n")
    assert added.returncode == 0, added.stderr
    users = Users(db)
    assert users.verify("ewa.k", "Bardzo-tajne-7").role == "manager"
    assert users.verify("ewa.k", "bardzo-tajne-7") is None
    assert users.verify("ewa.k", "") is None
    stored = sqlite3.connect(db).execute("SELECT password_hash FROM users").fetchone()[0]
    assert "Bardzo-tajne-7" not in stored and stored.startswith("$argon2id$")


def test_users_cli_refuses_bad_input_and_changes_nothing(tmp_path):
    db = tmp_path / "numerek.db"
    short = users_cli(db, "add", "jan", "--password-stdin", stdin="krotkie\n")
    assert short.returncode == 1 and "at least 10" in short.stderr
    bad_name = users_cli(db, "add", "Jan Kowalski", "--password-stdin", stdin="dlugie-haslo-1\n")
    assert bad_name.returncode == 1 and "login name" in bad_name.stderr
    assert users_cli(db, "add", "jan", "--role", "boss", "--password-stdin", stdin="x" * 12).returncode == 2
    assert users_cli(db, "list").stdout == ""
    assert users_cli(db, "add", "jan", "--role", "admin", "--password-stdin", stdin="dlugie-haslo-1\n").returncode == 0
    again = users_cli(db, "add", "jan", "--password-stdin", stdin="inne-haslo-22\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert users_cli(db, "list").stdout.split() == ["jan", "admin"]
    assert Users(db).verify("jan", "dlugie-haslo-1") is not None
    missing = users_cli(db, "remove", "ktos")
    assert missing.returncode == 1 and "no user" in missing.stderr


def test_a_session_ends_when_the_password_changes_or_the_user_is_removed(tmp_path):
    users = Users(tmp_path / "numerek.db")
    user = users.add("anna", "manager", "pierwsze-haslo")
    token = users.start_session(user)
    assert users.from_session(token) == user
    assert users.from_session(token[:-3] + "abc") is None
    users.set_password("anna", "drugie-haslo-2")
    assert users.from_session(token) is None
    fresh = users.start_session(user)
    assert users.from_session(fresh) == user
    users.remove("anna")
    assert users.from_session(fresh) is None


def test_a_session_ends_when_unused_too_long_or_too_old(tmp_path):
    now = [1_000_000.0]
    users = Users(tmp_path / "numerek.db", idle_min=30, max_h=2, clock=lambda: now[0])
    user = users.add("anna", "clerk", "haslo-urzednika-1")
    idle = users.start_session(user)
    used = users.start_session(user)
    minutes = 0
    for _ in range(4):  # used every 25 minutes: never 30 minutes idle
        now[0] += 25 * 60
        minutes += 25
        assert users.from_session(used) == user, f"{minutes} min after the login"
    assert users.from_session(idle) is None  # not used for 100 minutes
    now[0] += 25 * 60  # 125 minutes after the login: over 2 h, used or not
    assert users.from_session(used) is None


def test_the_database_holds_no_key_and_no_token_that_opens_a_session(tmp_path):
    """A copy of the file (a backup) must not let anyone in: no signing key, only token hashes."""
    db = tmp_path / "numerek.db"
    users = Users(db)
    token = users.start_session(users.add("ola", "manager", "haslo-ola-123"))
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM settings WHERE key = 'session_secret'").fetchone() == (0,)
    dump = "\n".join(conn.iterdump())
    assert token not in dump
    (stored,) = conn.execute("SELECT token_hash FROM sessions").fetchone()
    assert Users(db).from_session(stored) is None  # what is stored does not work as a cookie


def test_an_old_database_loses_its_signing_key_when_migrated(tmp_path):
    from server.store import MIGRATIONS, Store

    db = tmp_path / "numerek.db"
    conn = sqlite3.connect(db, isolation_level=None)
    import sqlite_utils

    for migration in MIGRATIONS[:4]:  # a file from before server-side sessions
        migration(sqlite_utils.Database(conn))
    conn.execute("PRAGMA user_version=4")
    assert conn.execute("SELECT COUNT(*) FROM settings WHERE key = 'session_secret'").fetchone() == (1,)
    conn.close()
    Store(str(db)).close()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM settings WHERE key = 'session_secret'").fetchone() == (0,)
    assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone() == (0,)


def test_a_password_hashed_with_old_parameters_still_works_and_is_rehashed(tmp_path):
    """Hashes from before (argon2-cffi's default: 64 MiB, t=3, p=4) verify, and the next
    successful login stores one with the current parameters (19 MiB, t=2, p=1)."""
    from argon2 import PasswordHasher, extract_parameters

    from server.auth import ARGON2

    db = tmp_path / "numerek.db"
    users = Users(db)
    users.add("jan", "admin", "stare-haslo-123")
    old = PasswordHasher().hash("stare-haslo-123")
    sqlite3.connect(db, isolation_level=None).execute("UPDATE users SET password_hash = ?", (old,))
    assert users.verify("jan", "zle-haslo-1234") is None
    assert sqlite3.connect(db).execute("SELECT password_hash FROM users").fetchone()[0] == old  # not on a failure
    assert users.verify("jan", "stare-haslo-123") is not None
    new = sqlite3.connect(db).execute("SELECT password_hash FROM users").fetchone()[0]
    assert new != old and extract_parameters(new) == ARGON2
    assert users.verify("jan", "stare-haslo-123") is not None


def test_a_slow_password_check_does_not_hold_up_other_sessions(tmp_path, monkeypatch):
    """A script's HTTP Basic login costs an Argon2 check: every clerk panel's session check
    must not wait behind it (one SQLite connection is shared by the web threads)."""
    import threading

    import server.auth as auth

    users = Users(tmp_path / "numerek.db")
    clerk = users.add("anna.k", "clerk", "haslo-urzednika-1")
    token = users.start_session(clerk)
    entered, release = threading.Event(), threading.Event()
    real = auth.HASHER

    class BlockedHasher:  # a password check that takes as long as the test says
        def verify(self, password_hash: str, password: str) -> bool:
            entered.set()
            release.wait(30)
            return real.verify(password_hash, password)

        def check_needs_rehash(self, password_hash: str) -> bool:
            return False

    monkeypatch.setattr(auth, "HASHER", BlockedHasher())
    from starlette.requests import Request

    from server.web_auth import WebAuth

    def request(headers: list[tuple[bytes, bytes]]) -> Request:
        return Request(
            {
                "type": "http",
                "method": "GET",
                "path": "/api/counters/1",
                "query_string": b"",
                "headers": headers,
                "client": ("127.0.0.1", 5000),
            }
        )

    gate = WebAuth(users)  # what every web page and API asks
    basic = base64.b64encode(b"anna.k:haslo-urzednika-1")
    script = threading.Thread(target=gate.who, args=(request([(b"authorization", b"Basic " + basic)]),))
    script.start()
    try:
        assert entered.wait(10)
        seen: list = []
        panel = threading.Thread(
            target=lambda: seen.append(gate.who(request([(b"cookie", f"{auth.SESSION_COOKIE}={token}".encode())])))
        )
        panel.start()
        panel.join(10)
        assert seen == [clerk]  # answered while the password check is still running
    finally:
        release.set()
        script.join(10)
