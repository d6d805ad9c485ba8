"""A resident's "STOP": the word, the keyed hash of their number, and the list kept without numbers.

A resident who replies "STOP" (or "NIE", "STOP SMS" — the office's list, compared without
case, diacritics or punctuation: "stop!", "Nie.", "stóp") to any SMS gets no more SMS from
this office: :func:`record` puts the number's keyed hash on the list, cancels what is
pending for it and enqueues one confirmation; the outbox refuses every later SMS to it at
hand-over (``Outbox(optout_key=…)``), whatever path enqueued it (a ticket, a booking, a
pick-up list). "START" takes the number off the list again.

Why a keyed hash (HMAC-SHA256 with a key of the server's own) and not the number: the list
must outlive the erasure of phone numbers (``retention_hours``: the outbox's rows say
``erased:<id>`` a day later), or a resident who said STOP would be written to again at their
next visit. A plain hash would not protect anything — there are about 10⁹ Polish mobile
numbers, and SHA-256 of all of them takes minutes on a laptop — so whoever holds the
database file (a backup, a stolen SD card) could read the list back. With the key kept in its
own file (mode 0600, not in the database, not in its backups) the list is a set of random
strings to them; the server, holding the key, can only answer "is this number on the list?"
for a number it is given. Losing the key empties the list in effect: back it up apart from
the database (docs/notifications.md).

No SQL beyond the ``notify_optouts`` table and the outbox's ``notices`` rows; the server's
side (where replies come from) is server/optout.py.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import sqlite3
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from hashlib import sha256
from pathlib import Path

from notify.message import Channel, NoticeKind
from notify.phone import InvalidPhoneNumber, normalise

DEFAULT_WORDS = ("STOP", "NIE", "STOP SMS")
UNDO_WORDS = ("START",)
OPTED_OUT = "opted out"
"""The reason of a notice cancelled because its number is on the list (reports count these)."""
CONFIRM_VALID_S = 24 * 3600.0


class Reply(StrEnum):
    OPTED_OUT = "opted_out"  # newly on the list: pending notices cancelled, one confirmation enqueued
    ALREADY = "already"  # on the list before: nothing changes, no second confirmation
    RESUMED = "resumed"  # START: off the list
    IGNORED = "ignored"  # any other text
    BAD_SENDER = "bad_sender"  # the sender is not a phone number: nothing done


def _fold(text: str) -> str:
    """Upper case, no diacritics, punctuation as spaces, single spaces: "  stóp, sms! " → "STOP SMS"."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = plain.replace("ł", "l").replace("Ł", "L")  # ł has no decomposition
    return " ".join(re.sub(r"[^\w]+", " ", plain.casefold()).split()).upper()


def matches(text: str, words: Iterable[str]) -> bool:
    """Is the whole message one of ``words`` (an opt-out word inside a sentence is not one)?"""
    folded = _fold(text[:200])
    return bool(folded) and folded in {_fold(w) for w in words}


def sender_number(raw: str, region: str) -> str:
    """The sender as E.164: gammu gives "+48600100200", providers often "48600100200"."""
    text = raw.strip()
    if text.isdigit() and len(text) >= 11:
        text = "+" + text
    return normalise(text, region, mobile_only=False)


def number_key(key: bytes, e164: str) -> str:
    """The keyed hash stored instead of the number (see the module's docstring)."""
    return hmac.new(key, e164.encode("ascii"), sha256).hexdigest()


def load_key(path: Path) -> bytes:
    """The server's opt-out key: 32 random bytes, created once (mode 0600) and kept."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    if len(data) < 16:
        raise ValueError(f"{path}: the opt-out key is too short (delete it only if the list may be lost)")
    return data


def migration(conn: sqlite3.Connection) -> None:
    """``notify_optouts``: one row per number that said STOP, its keyed hash only."""
    conn.execute(
        """CREATE TABLE notify_optouts (
               hash TEXT PRIMARY KEY,     -- HMAC-SHA256(server key, E.164 number), hex
               at   REAL NOT NULL,        -- when (epoch seconds)
               via  TEXT NOT NULL         -- 'gammu' or the provider gateway's name
           ) WITHOUT ROWID"""
    )


def is_opted_out(conn: sqlite3.Connection, key: bytes, e164: str) -> bool:
    row = conn.execute("SELECT 1 FROM notify_optouts WHERE hash = ?", (number_key(key, e164),)).fetchone()
    return row is not None


@dataclass(frozen=True)
class Words:
    stop: tuple[str, ...] = DEFAULT_WORDS
    undo: tuple[str, ...] = UNDO_WORDS


def record(
    conn: sqlite3.Connection,
    key: bytes,
    words: Words,
    sender: str,
    text: str,
    via: str,
    now: float,
    region: str = "PL",
) -> Reply:
    """Act on one incoming SMS, inside the caller's transaction (all of it or nothing).

    A stop word: the number's hash goes on the list; the number's pending SMS are cancelled
    (reason :data:`OPTED_OUT`); one confirmation is enqueued — only when the hash was not on
    the list yet, so a second STOP sends nothing. An undo word takes it off the list.
    """
    try:
        number = sender_number(sender, region)
    except InvalidPhoneNumber:
        return Reply.BAD_SENDER
    hashed = number_key(key, number)
    if matches(text, words.undo):
        cur = conn.execute("DELETE FROM notify_optouts WHERE hash = ?", (hashed,))
        return Reply.RESUMED if cur.rowcount else Reply.IGNORED
    if not matches(text, words.stop):
        return Reply.IGNORED
    cur = conn.execute(
        "INSERT INTO notify_optouts (hash, at, via) VALUES (?, ?, ?) ON CONFLICT (hash) DO NOTHING",
        (hashed, now, via),
    )
    if cur.rowcount == 0:
        return Reply.ALREADY
    conn.execute(
        """UPDATE notices SET state = 'cancelled', finished_at = ?, reason = ?
           WHERE recipient = ? AND channel = 'sms' AND state = 'pending'""",
        (now, OPTED_OUT, number),
    )
    last = conn.execute("SELECT lang FROM notices WHERE recipient = ? ORDER BY id DESC LIMIT 1", (number,)).fetchone()
    from notify.outbox import enqueue  # the outbox imports this module for its hand-over check

    enqueue(
        conn,
        notice=f"optout:{hashed[:24]}:{int(now)}",
        recipient=number,
        channel=Channel.SMS,
        kind=NoticeKind.OPTOUT_CONFIRMED,
        lang=last[0] if last else "pl",
        payload={},
        now=now,
        expires_at=now + CONFIRM_VALID_S,
    )
    return Reply.OPTED_OUT
