"""The SQLite outbox with real gateways: at most once per (notice, recipient), across kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from notify.config import GammuConfig, HttpSmsConfig, NotifySettings
from notify.gateways.gammu import GammuGateway
from notify.gateways.http_sms import HttpSmsGateway
from notify.message import Channel, Message, NoticeKind
from notify.outbox import Outbox, Route, cancel, connect, enqueue, migrate
from tests.harness import ROOT, wait_for
from tests.notify_support import GammuDaemon, Provider, Reply, read_smsbackup

WARSAW = ZoneInfo("Europe/Warsaw")
NUMBER = "+48600100200"
CALL = {"ticket": "A023", "counter": {"pl": "Stanowisko 4"}, "place": {"pl": "parter"}}
NEAR = {"ticket": "A023", "ahead": 3, "minutes": 10}


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=WARSAW).timestamp()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def settings(**over) -> NotifySettings:
    return NotifySettings.model_validate({"office": "Starostwo Łódź", **over})


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = connect(str(tmp_path / "numerek.db"))
    migrate(conn)
    yield conn
    conn.close()


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.stop()


@pytest.fixture
def smsd(tmp_path: Path) -> Iterator[GammuDaemon]:
    daemon = GammuDaemon(tmp_path / "gammu")
    yield daemon
    daemon.stop()


def http_route(provider: Provider, idempotent: bool = False) -> dict[Channel, Route]:
    config = HttpSmsConfig.model_validate(
        {
            "url": provider.url,
            "token": "t0ken-123",
            "sender": "Starostwo",
            "id_path": "list.0.id",
            "idempotent": idempotent,
        }
    )
    return {Channel.SMS: Route("provider", HttpSmsGateway(config))}


def add(conn, notice: str, kind: NoticeKind, payload: dict, now: float, to: str = NUMBER, **kw) -> int | None:
    return enqueue(
        conn, notice=notice, recipient=to, channel=Channel.SMS, kind=kind, lang="pl", payload=payload, now=now, **kw
    )


def states(conn) -> dict[str, str]:
    return dict(conn.execute("SELECT notice, state FROM notices"))


def test_a_notice_is_written_with_the_event_that_causes_it_or_not_at_all(db):
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT)")
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO events (kind) VALUES ('called')")
    add(db, "ticket:1:called", NoticeKind.CALLED, CALL, 1000.0)
    db.execute("ROLLBACK")
    assert db.execute("SELECT COUNT(*) FROM notices").fetchone()[0] == 0
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO events (kind) VALUES ('called')")
    first = add(db, "ticket:1:called", NoticeKind.CALLED, CALL, 1000.0)
    db.execute("COMMIT")
    assert first is not None
    assert add(db, "ticket:1:called", NoticeKind.CALLED, CALL, 1001.0) is None  # once per (notice, recipient)
    assert add(db, "ticket:1:called", NoticeKind.CALLED, CALL, 1001.0, to="+48600100201") is not None


def test_a_recipient_that_is_not_normalised_is_refused_and_nothing_is_written(db):
    with pytest.raises(ValueError, match="E.164"):
        add(db, "ticket:1:near", NoticeKind.TURN_NEAR, NEAR, 1000.0, to="600 100 200")
    with pytest.raises(ValueError, match="e-mail"):
        enqueue(
            db,
            notice="n",
            recipient="nobody",
            channel=Channel.EMAIL,
            kind=NoticeKind.TEST,
            lang="pl",
            payload={},
            now=1.0,
        )
    assert db.execute("SELECT COUNT(*) FROM notices").fetchone()[0] == 0


def test_the_schema_is_migrated_once_and_leaves_the_stores_user_version_alone(db):
    db.execute("PRAGMA user_version = 7")
    assert migrate(db) == 3 and migrate(db) == 3  # notices; the opt-out list; who subscribed
    assert db.execute("PRAGMA user_version").fetchone()[0] == 7


def test_notices_go_out_through_gammu_smsd_once_and_their_delivery_is_learnt(db, smsd):
    now = at("2026-12-07T10:00")
    add(db, "ticket:1:near", NoticeKind.TURN_NEAR, NEAR, now)
    add(db, "ticket:1:called", NoticeKind.CALLED, CALL, now)
    gateway = GammuGateway(GammuConfig(smsdrc=smsd.rc, staging=smsd.root / "staging"))
    outbox = Outbox(db, settings(), {Channel.SMS: Route("modem", gateway)}, clock=Clock(now))
    assert outbox.run_once() == 2
    assert outbox.run_once() == 0
    assert states(db) == {"ticket:1:near": "sent", "ticket:1:called": "sent"}
    names = sorted(p.name for p in smsd.outbox())
    assert names[0].startswith("OUTA") and names[1].startswith("OUTC")  # the call goes first
    smsd.start()

    def learnt() -> dict[str, str]:
        outbox.poll_deliveries()
        return dict(db.execute("SELECT notice, delivery FROM notices"))

    wait_for(lambda: learnt() == {"ticket:1:near": "sent", "ticket:1:called": "sent"}, 60, "both known as sent")
    assert len(smsd.sent()) == 2
    texts = sorted(read_smsbackup(p).text for p in smsd.sent())
    assert texts == [
        "Starostwo Łódź: A023 – Stanowisko 4, parter. Zapraszamy.",
        "Starostwo Łódź: A023 – przed Tobą 3 osoby (ok. 10 min). Wróć do poczekalni.",
    ]
    assert db.execute("SELECT parts FROM notices WHERE notice = 'ticket:1:near'").fetchone()[0] == 2


def test_an_office_that_transliterates_pays_one_part_where_diacritics_cost_two(db, smsd):
    now = at("2026-12-07T10:00")
    add(db, "ticket:1:near", NoticeKind.TURN_NEAR, NEAR, now)
    gateway = GammuGateway(GammuConfig(smsdrc=smsd.rc, staging=smsd.root / "staging"))
    Outbox(db, settings(transliterate=True), {Channel.SMS: Route("modem", gateway)}, clock=Clock(now)).run_once()
    [queued] = smsd.outbox()
    got = read_smsbackup(queued)
    assert (got.text, got.parts, got.unicode) == (
        "Starostwo Lodz: A023 - przed Toba 3 osoby (ok. 10 min). Wroc do poczekalni.",
        1,
        False,
    )


def test_quiet_hours_hold_everything_but_the_call(db, provider):
    clock = Clock(at("2026-12-07T21:30"))
    add(db, "case:KM.1:ready", NoticeKind.DOCUMENT_READY, {}, clock.t)
    add(db, "ticket:9:called", NoticeKind.CALLED, CALL, clock.t, to="+48600100209")
    outbox = Outbox(db, settings(), http_route(provider), clock=clock)
    outbox.run_once()
    assert states(db) == {"case:KM.1:ready": "pending", "ticket:9:called": "sent"}
    assert [m["to"] for m in provider.messages] == ["48600100209"]
    next_at, reason = db.execute(
        "SELECT next_attempt_at, reason FROM notices WHERE notice = 'case:KM.1:ready'"
    ).fetchone()
    assert (next_at, reason) == (at("2026-12-08T07:00"), "quiet hours")


def test_a_number_is_not_sent_more_than_its_rate(db, provider):
    clock = Clock(at("2026-12-07T10:00"))
    for i in range(4):
        add(db, f"ticket:{i}:called", NoticeKind.CALLED, CALL, clock.t)
    outbox = Outbox(db, settings(rate_limit={"messages": 3, "per_minutes": 60}), http_route(provider), clock=clock)
    outbox.run_once()
    assert len(provider.messages) == 3
    assert sorted(states(db).values()) == ["pending", "sent", "sent", "sent"]
    clock.t += 3601
    outbox.run_once()
    assert len(provider.messages) == 4


def test_a_busy_provider_is_retried_with_backoff_and_a_passed_turn_expires(db, provider):
    clock = Clock(at("2026-12-07T10:00"))
    add(db, "ticket:1:near", NoticeKind.TURN_NEAR, NEAR, clock.t, expires_at=clock.t + 600)
    add(db, "ticket:2:near", NoticeKind.TURN_NEAR, NEAR, clock.t, to="+48600100202", expires_at=clock.t + 20)
    provider.replies += [Reply(503, {"message": "busy"}), Reply(503, {"message": "busy"})]
    outbox = Outbox(db, settings(), http_route(provider), clock=clock)
    outbox.run_once()
    assert states(db) == {"ticket:1:near": "pending", "ticket:2:near": "expired"}  # 30 s backoff > its 20 s
    clock.t += 30
    outbox.run_once()
    assert states(db)["ticket:1:near"] == "sent" and len(provider.messages) == 1
    assert db.execute("SELECT attempts FROM notices WHERE notice = 'ticket:1:near'").fetchone()[0] == 2


def test_a_cancelled_notice_is_never_sent(db, provider):
    now = at("2026-12-07T10:00")
    add(db, "ticket:1:near", NoticeKind.TURN_NEAR, NEAR, now)
    assert cancel(db, "ticket:1:near", now, "called before the notice went out") == 1
    Outbox(db, settings(), http_route(provider), clock=Clock(now)).run_once()
    assert states(db) == {"ticket:1:near": "cancelled"} and provider.requests == []


def test_phone_numbers_are_erased_after_the_retention_period(db, provider):
    now = at("2026-12-07T10:00")
    add(db, "ticket:1:called", NoticeKind.CALLED, CALL, now)
    outbox = Outbox(db, settings(), http_route(provider), clock=Clock(now))
    outbox.run_once()
    assert outbox.erase_personal_data(before=now + 1) == 1
    recipient, payload, state = db.execute("SELECT recipient, payload, state FROM notices").fetchone()
    assert recipient.startswith("erased:") and payload == "{}" and state == "sent"


def crash_after_send(db_path: Path, *args: str) -> str:
    """Run the sender in its own process and SIGKILL it once the gateway took the message."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.notify_crash_child", str(db_path), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    assert line.startswith("HANDED "), line
    return line.split()[1]


def test_a_kill_9_between_send_and_record_sends_no_second_sms_through_gammu(tmp_path, db, smsd):
    """Gammu's rows are claimed as a group: the crash leaves all three ``sending``, one of them handed over."""
    smsd.start()
    numbers = [NUMBER, "+48600100201", "+48600100202"]
    for i, number in enumerate(numbers):
        add(
            db, f"ticket:{i}:called", NoticeKind.CALLED, CALL, time.time(), to=number
        )  # the sender runs on the real clock
    handed = crash_after_send(tmp_path / "numerek.db", "gammu", str(smsd.rc), str(smsd.root / "staging"))
    assert set(states(db).values()) == {"sending"}
    gateway = GammuGateway(GammuConfig(smsdrc=smsd.rc, staging=smsd.root / "staging"))  # a restarted server
    outbox = Outbox(db, settings(), {Channel.SMS: Route("modem", gateway)})
    assert outbox.recover() == 3
    outbox.run_once()
    assert set(states(db).values()) == {"sent"}
    assert db.execute("SELECT gateway_id, attempts FROM notices WHERE notice = 'ticket:0:called'").fetchone() == (
        handed,
        2,
    )
    wait_for(lambda: len(smsd.sent()) == 3 and not smsd.outbox(), 60, "three messages transmitted")
    assert sorted(line.split(" to ")[1].split(",")[0] for line in smsd.transmitted()) == numbers


def test_a_kill_9_between_send_and_record_leaves_unknown_when_the_provider_has_no_keys(tmp_path, db, provider):
    add(db, "ticket:1:called", NoticeKind.CALLED, CALL, time.time())
    crash_after_send(tmp_path / "numerek.db", "http", provider.url, "0")
    outbox = Outbox(db, settings(), http_route(provider, idempotent=False))
    outbox.recover()
    outbox.run_once()
    state, reason = db.execute("SELECT state, reason FROM notices").fetchone()
    assert state == "unknown" and "stopped between" in reason
    assert len(provider.requests) == 1 and len(provider.messages) == 1


def test_a_kill_9_between_send_and_record_is_retried_with_the_same_key_when_the_provider_has_keys(
    tmp_path, db, provider
):
    add(db, "ticket:1:called", NoticeKind.CALLED, CALL, time.time())  # the sender runs on the real clock
    handed = crash_after_send(tmp_path / "numerek.db", "http", provider.url, "1")
    outbox = Outbox(db, settings(), http_route(provider, idempotent=True))
    outbox.recover()
    outbox.run_once()
    assert db.execute("SELECT state, gateway_id FROM notices").fetchone() == ("sent", handed)
    assert len(provider.requests) == 2 and len(provider.messages) == 1
    assert provider.requests[0].fields["idx"] == provider.requests[1].fields["idx"]


class Broken:
    """A gateway with a bug: it raises instead of answering."""

    channel = Channel.SMS
    idempotent = False

    def send(self, message):
        raise RuntimeError("bug")

    def status(self, gateway_id):
        return None

    def close(self):
        pass


def test_a_gateway_that_raises_leaves_its_row_unknown_and_the_others_recorded(db, provider):
    now = at("2026-12-07T10:00")
    add(db, "ticket:1:called", NoticeKind.CALLED, CALL, now)
    enqueue(
        db,
        notice="ticket:1:called",
        recipient="jan@example.pl",
        channel=Channel.EMAIL,
        kind=NoticeKind.CALLED,
        lang="pl",
        payload=CALL,
        now=now,
    )
    routes = {**http_route(provider), Channel.EMAIL: Route("mail", Broken())}
    assert Outbox(db, settings(), routes, clock=Clock(now)).run_once() == 2
    rows = dict(db.execute("SELECT channel, state || ': ' || reason FROM notices"))
    assert rows["sms"].startswith("sent") and rows["email"] == "unknown: the gateway failed: RuntimeError"


def test_gammu_inject_that_cannot_run_is_a_retry_not_a_crash(smsd, tmp_path):
    gateway = GammuGateway(GammuConfig(smsdrc=smsd.rc, staging=smsd.root / "staging", inject=str(tmp_path)))
    result = gateway.send(Message(Channel.SMS, NUMBER, "x", key="k"))
    assert result.outcome.value == "retry" and "cannot run" in result.reason


def test_a_providers_delivery_report_is_recorded_against_its_notice(db, provider):
    now = at("2026-12-07T10:00")
    add(db, "ticket:1:called", NoticeKind.CALLED, CALL, now)
    routes = http_route(provider)
    outbox = Outbox(db, settings(), routes, clock=Clock(now))
    outbox.run_once()
    assert db.execute("SELECT delivery FROM notices").fetchone() == ("queued",)
    gateway = routes[Channel.SMS].gateway
    assert isinstance(gateway, HttpSmsGateway)
    report = gateway.parse_delivery_report({"MsgId": "m00001", "status": "DELIVERED", "to": "48600100200"})
    assert report is not None and outbox.update_delivery("provider", *report)
    assert db.execute("SELECT delivery FROM notices").fetchone() == ("delivered",)
    assert not outbox.update_delivery("provider", "m99999", report[1])  # a report for no message of ours
