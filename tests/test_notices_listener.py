"""The notification rules inside the worker's batch (server/notices.py, NoticeListener), on the
real engine and a real SQLite file with the store's and the outbox's tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from notify import outbox as ob
from notify.message import Channel
from protocol.messages import CounterAction
from server.config import NoticeThreshold, Notifications
from server.domain import Command
from server.engine import QueueEngine
from server.notices import Contact, NoticeListener
from server.notices_schema import migration
from tests.engine_support import FakeClock, office_config


class Office:
    def __init__(self, folder: Path, people: int = 3) -> None:
        self.clock = FakeClock()
        self.engine = QueueEngine(office_config(), self.clock)
        self.conn = ob.connect(str(folder / "n.db"))
        migration(self.conn)
        ob.migrate(self.conn)
        settings = Notifications(config="x", near=NoticeThreshold(people=people, minutes=0))
        self.woken = 0
        self.listener = NoticeListener(settings, lambda: self.engine.config, self._wake)

    def _wake(self) -> None:
        self.woken += 1

    def ticket(self, contact: bool) -> int:
        t, _ = self.engine.issue("pj", False, origin="test")
        if contact:
            self.conn.execute(
                "INSERT INTO notify_contacts (ticket_id, day, token, channel, recipient, lang, consent_at, consent)"
                " VALUES (?, ?, ?, 'email', ?, 'pl', 0, 'test')",
                (t.id, t.day.isoformat(), t.token, f"r{t.id}@example.pl"),
            )
            self.listener._add(Contact(t.id, t.token, Channel.EMAIL, f"r{t.id}@example.pl", "pl"))
        self.batch()
        return t.id

    def press(self, action: CounterAction = CounterAction.NEXT, current: str | None = None) -> None:
        self.clock.advance(60)
        self.engine.command("1", Command(action=action, current=current))
        self.batch()

    def batch(self) -> None:
        changes = self.engine.take_changes()
        with ob.transaction(self.conn):
            self.listener.write(self.conn, changes, self.engine)
        self.listener.committed(changes)

    def notices(self) -> list[tuple[str, str]]:
        return self.conn.execute("SELECT notice, state FROM notices ORDER BY id").fetchall()


@pytest.fixture
def office(tmp_path) -> Office:
    return Office(tmp_path)


def test_every_subscribed_ticket_within_the_threshold_is_told_in_the_same_batch(office):
    for _ in range(3):
        office.ticket(contact=False)
    a, b, c = (office.ticket(contact=True) for _ in range(3))  # 3, 4 and 5 ahead
    assert office.notices() == [(f"ticket:{a}:near", "pending")]
    office.press()
    office.press()  # now 1, 2 and 3 ahead: b and c both cross, a was told already
    assert sorted(office.notices()) == sorted(
        [(f"ticket:{a}:near", "pending"), (f"ticket:{b}:near", "pending"), (f"ticket:{c}:near", "pending")]
    )
    assert office.woken >= 2


def test_a_call_not_yet_sent_is_cancelled_when_the_ticket_ends(office):
    mine = office.ticket(contact=True)
    office.press()  # called
    assert (f"ticket:{mine}:called", "pending") in office.notices()
    number = office.engine.tickets[mine].number
    office.press(CounterAction.FINISH, current=number)
    assert (f"ticket:{mine}:called", "cancelled") in office.notices()
    assert office.listener.contacts == {}
    ended = office.conn.execute("SELECT ended_at IS NOT NULL FROM notify_contacts").fetchall()
    assert ended == [(1,)]  # retention_hours > 0: erased later by the sender


def test_a_batch_that_is_not_written_leaves_the_listener_as_it_was(office):
    for _ in range(4):
        office.ticket(contact=False)
    mine = office.ticket(contact=True)  # 4 ahead
    office.clock.advance(60)
    office.engine.command("1", Command(action=CounterAction.NEXT, current=None))
    changes = office.engine.take_changes()
    office.conn.execute("BEGIN IMMEDIATE")
    office.listener.write(office.conn, changes, office.engine)
    office.conn.execute("ROLLBACK")  # the disk refused the batch: the worker never calls committed()
    assert office.notices() == []
    assert office.listener.contacts[mine].near is False


def test_a_contact_is_erased_retention_hours_after_its_ticket_ended_and_not_before(tmp_path):
    from datetime import timedelta

    from notify.config import NotifyConfig
    from server.notices import NoticeSender

    office = Office(tmp_path)
    mine = office.ticket(contact=True)  # nobody ahead: "near" is enqueued at once
    office.press()
    number = office.engine.tickets[mine].number
    office.press(CounterAction.FINISH, current=number)
    ended = office.clock.now
    config = NotifyConfig.model_validate({"notify": {"office": "Urząd"}, "gateways": {}})
    now = {"t": ended + timedelta(hours=23)}
    sender = NoticeSender(str(tmp_path / "n.db"), config, office.listener.settings, lambda: now["t"], gateways={})
    outbox = ob.Outbox(office.conn, config.notify, {}, clock=lambda: now["t"].timestamp())
    assert sender.erase(office.conn, outbox) == (0, 0)  # retention_hours = 24: not yet
    assert office.conn.execute("SELECT COUNT(*) FROM notify_contacts").fetchone() == (1,)
    now["t"] = ended + timedelta(hours=25)
    assert sender.erase(office.conn, outbox) == (1, 2)  # the contact, and both finished notices' recipients
    assert office.conn.execute("SELECT COUNT(*) FROM notify_contacts").fetchone() == (0,)
    recipients = office.conn.execute("SELECT recipient, payload FROM notices").fetchall()
    assert all(r.startswith("erased:") and p == "{}" for r, p in recipients)
