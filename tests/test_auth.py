"""Manager logins: ``numerek-users`` and the password/session checks behind the reports."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from server.auth import Users
from tests.harness import ROOT


def users_cli(db, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server.auth", "--database", str(db), *args],
        input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip


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
