"""Web logins: ``numerek-users`` and the password/session checks behind the clerk panel, reports and admin page."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from server.auth import Users
from tests.harness import ROOT


def users_cli(db, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server.auth", "--database", str(db), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


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


def test_session_cookie_ends_when_the_password_changes_or_the_user_is_removed(tmp_path):
    users = Users(tmp_path / "numerek.db")
    user = users.add("anna", "manager", "pierwsze-haslo")
    cookie = users.session_cookie(user)
    assert users.from_cookie(cookie) == user
    assert users.from_cookie(cookie[:-3] + "abc") is None
    users.set_password("anna", "drugie-haslo-2")
    assert users.from_cookie(cookie) is None
    fresh = users.session_cookie(user)
    assert users.from_cookie(fresh) == user
    users.remove("anna")
    assert users.from_cookie(fresh) is None


def test_each_installation_signs_sessions_with_its_own_key(tmp_path):
    a, b = Users(tmp_path / "a.db"), Users(tmp_path / "b.db")
    assert a.secret() != b.secret() and len(a.secret()) >= 64
    cookie = a.session_cookie(a.add("ola", "manager", "haslo-ola-123"))
    b.add("ola", "manager", "haslo-ola-123")
    assert b.from_cookie(cookie) is None


def test_a_slow_password_check_does_not_hold_up_other_sessions(tmp_path, monkeypatch):
    """A script's HTTP Basic login costs an Argon2 check (~0.3 s): every clerk panel's cookie
    check must not wait behind it (one SQLite connection is shared by the web threads)."""
    import threading

    import server.auth as auth

    users = Users(tmp_path / "numerek.db")
    clerk = users.add("anna.k", "clerk", "haslo-urzednika-1")
    cookie = users.session_cookie(clerk)
    entered, release = threading.Event(), threading.Event()
    real = auth._HASHER

    class BlockedHasher:  # a password check that takes as long as the test says
        def verify(self, password_hash: str, password: str) -> bool:
            entered.set()
            release.wait(30)
            return real.verify(password_hash, password)

    monkeypatch.setattr(auth, "_HASHER", BlockedHasher())
    from starlette.requests import Request

    from server.web_auth import WebAuth

    gate = WebAuth(users)  # what every web page and API asks
    script = threading.Thread(target=gate.verify, args=("anna.k", "haslo-urzednika-1"))
    script.start()
    try:
        assert entered.wait(10)
        seen: list = []
        request = Request(
            {
                "type": "http",
                "method": "GET",
                "path": "/api/counters/1",
                "query_string": b"",
                "headers": [(b"cookie", f"{auth.SESSION_COOKIE}={cookie}".encode())],
            }
        )
        panel = threading.Thread(target=lambda: seen.append(gate.who(request)))
        panel.start()
        panel.join(10)
        assert seen == [clerk]  # answered while the password check is still running
    finally:
        release.set()
        script.join(10)
