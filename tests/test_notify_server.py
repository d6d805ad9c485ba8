"""Residents' notifications end to end, on real parts: the real server process, Mosquitto,
aiosmtpd as the office's mail relay and gammu-smsd with Gammu's dummy phone.

A resident leaves an e-mail or a phone number on the ticket page (an HTTP form post, as the
browser sends it), counters press NEXT over MQTT, and the relay or the SMS daemon receives
"your turn is near" and "you are called" exactly once each.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.harness import Broker, Peer, ServerProcess, free_port, wait_for, write_config
from tests.notify_support import GammuDaemon, Mailbox, read_smsbackup

BASE = "numerek"
EMAIL = "jan.kowalski@example.pl"


def notify_toml(folder: Path, smtp_port: int | None = None, smsd: GammuDaemon | None = None) -> Path:
    text = f"""
{'email = "mail"' if smtp_port else ""}
{'sms = "modem"' if smsd else ""}

[notify]
office = "Urząd Testowy"
quiet_hours = {{ start = "00:00", end = "00:00" }}   # none: the tests run at any hour
backoff = {{ first_s = 0.3, factor = 1, max_s = 1, max_attempts = 100 }}
"""
    if smtp_port:
        text += f"""
[gateways.mail]
type = "smtp"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "kolejka@urzad.example.pl"
timeout_s = 5
"""
    if smsd:
        text += f"""
[gateways.modem]
type = "gammu"
smsdrc = "{smsd.rc}"
staging = "{smsd.root / "staging"}"
"""
    path = folder / "notify.toml"
    path.write_text(text, encoding="utf-8")
    return path


NOTIFY_SECTION = """
[notify]
config = "notify.toml"
near = {{ people = 3, minutes = 0 }}
retention_hours = {retention}
subscribe_rate = "6/10 minutes"
places = {{ "1" = {{ pl = "parter", en = "ground floor", uk = "перший поверх" }} }}
"""


def office(tmp_path: Path, broker: Broker, retention: int = 0) -> ServerProcess:
    http_port = free_port()
    cfg = write_config(tmp_path / "office.toml", broker.port, http_port)
    cfg.write_text(cfg.read_text(encoding="utf-8") + NOTIFY_SECTION.format(retention=retention), encoding="utf-8")
    return ServerProcess(cfg, http_port=http_port)


class Relay:
    """aiosmtpd on a loopback port, started when the test says so."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mailbox = Mailbox()
        self.controller: Controller | None = None

    def start(self) -> Relay:
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def messages(self) -> list:
        return [message_from_bytes(e.original_content, policy=policy.default) for e in self.mailbox.envelopes]


@pytest.fixture
def relay() -> Iterator[Relay]:
    r = Relay(free_port())
    yield r
    r.stop()


@pytest.fixture
def peer(broker) -> Iterator[Peer]:
    p = Peer(broker.port)
    p.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/+/reply")
    yield p
    p.close()


def issue(peer: Peer, service: str, rid: str) -> dict:
    reply = peer.request(
        f"{BASE}/kiosk/k1/request",
        {"v": 1, "id": rid, "service": service, "priority": False},
        response_topic=f"{BASE}/kiosk/k1/response/{rid}",
    )
    assert reply["ok"], reply
    return reply["ticket"]


def press(peer: Peer, counter: str, rid: str, action: str = "next") -> dict:
    peer.publish(f"{BASE}/counter/{counter}/command", {"v": 1, "id": rid, "action": action})
    reply = peer.expect(f"{BASE}/counter/{counter}/reply", where=lambda d: d["id"] == rid)
    assert reply["ok"], reply
    return reply


def rows(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def leave(server: ServerProcess, token: str, contact: str, consent: bool = True, **kw) -> object:
    data = {"contact": contact, "lang": "pl", **({"consent": "yes"} if consent else {})}
    return server.anonymous_post(f"/t/{token}/notify", data=data, follow_redirects=False, **kw)


def test_a_resident_who_left_an_email_gets_turn_near_and_called_exactly_once(tmp_path, broker, peer, relay):
    relay.start()
    notify_toml(tmp_path, smtp_port=relay.port)
    server = office(tmp_path, broker).start()
    try:
        tickets = [issue(peer, "rej", f"r{i}") for i in range(5)]
        mine = tickets[4]
        page = server.anonymous_get(f"/t/{mine['token']}")
        assert "Powiadom mnie" in page.text
        form = server.anonymous_get(f"/t/{mine['token']}/notify")
        assert form.status_code == 200 and "Zgadzam się" in form.text

        answer = leave(server, mine["token"], EMAIL)
        assert answer.status_code == 303
        page = server.anonymous_get(f"/t/{mine['token']}")
        assert "j…@example.pl" in page.text and EMAIL not in page.text  # recognisable, not readable off a screen
        assert rows(server.database, "SELECT COUNT(*) FROM notices") == [(0,)]  # four ahead: nothing yet

        press(peer, "1", "n1")  # A001 called: three ahead of A005
        wait_for(lambda: len(relay.mailbox.envelopes) == 1, 30, "the turn-near e-mail")
        near = relay.messages()[0]
        assert near["To"] == EMAIL
        assert near["Subject"] == "Zbliża się Twoja kolej"
        assert "A005 – przed Tobą 3 osoby" in near.get_body(("plain",)).get_content()

        for i in range(2, 6):  # A002, A003, A004, then A005 at Stanowisko 1
            press(peer, "1", f"n{i}")
        wait_for(lambda: len(relay.mailbox.envelopes) == 2, 30, "the called e-mail")
        called = relay.messages()[1]
        assert called["Subject"] == "Zapraszamy"
        assert "A005 – Stanowisko 1, parter" in called.get_body(("plain",)).get_content()

        press(peer, "1", "n6")  # A005 finished: with retention 0 its contact is erased in that batch
        assert rows(server.database, "SELECT COUNT(*) FROM notify_contacts") == [(0,)]
    finally:
        server.stop()  # nothing can be sent after this
    assert len(relay.mailbox.envelopes) == 2
    assert sorted(rows(server.database, "SELECT kind, state FROM notices")) == [
        ("called", "sent"),
        ("turn_near", "sent"),
    ]
    assert EMAIL not in server.log()

    # the sender erases finished notices' recipients on its schedule (at start, then every few minutes)
    server.start()
    try:
        wait_for(
            lambda: rows(server.database, "SELECT COUNT(*) FROM notices WHERE recipient LIKE 'erased:%'") == [(2,)],
            30,
            "the recipients to be erased",
        )
    finally:
        server.stop()
    assert len(relay.mailbox.envelopes) == 2


def test_a_notice_enqueued_before_a_server_crash_is_sent_once_after_the_restart(tmp_path, broker, peer, relay):
    notify_toml(tmp_path, smtp_port=relay.port)  # the relay is down: the first attempt cannot connect
    server = office(tmp_path, broker).start()
    ticket = issue(peer, "rej", "r1")
    assert leave(server, ticket["token"], EMAIL).status_code == 303  # nobody ahead: "near" at once
    wait_for(
        lambda: rows(server.database, "SELECT state, attempts > 0 FROM notices") == [("pending", 1)],
        30,
        "a failed attempt while the relay is down",
    )
    server.kill9()
    relay.start()
    server.start()
    try:
        wait_for(lambda: len(relay.mailbox.envelopes) == 1, 30, "the turn-near e-mail after the restart")
        press(peer, "1", "n1")
        wait_for(lambda: len(relay.mailbox.envelopes) == 2, 30, "the called e-mail")
    finally:
        server.stop()
    subjects = [m["Subject"] for m in relay.messages()]
    assert subjects == ["Zbliża się Twoja kolej", "Zapraszamy"]


def test_an_email_in_flight_when_the_server_dies_is_left_unknown_and_never_sent_twice(tmp_path, broker, peer, relay):
    relay.start()
    relay.mailbox.stall_data = True  # the relay takes the message and does not answer: the sender waits
    notify_toml(tmp_path, smtp_port=relay.port)
    server = office(tmp_path, broker).start()
    ticket = issue(peer, "rej", "r1")
    assert leave(server, ticket["token"], EMAIL).status_code == 303  # nobody ahead: "near" at once
    wait_for(lambda: rows(server.database, "SELECT state FROM notices") == [("sending",)], 30, "the hand-over")
    server.kill9()
    assert relay.controller is not None
    relay.controller.loop.call_soon_threadsafe(relay.mailbox.released.set)
    relay.mailbox.stall_data = False
    server.start()
    try:
        # SMTP has no idempotency key: after the restart the row is "unknown", visible, not resent
        wait_for(lambda: rows(server.database, "SELECT state FROM notices") == [("unknown",)], 30, "recovery")
        press(peer, "1", "n1")  # the call still goes out
        wait_for(lambda: len(relay.mailbox.envelopes) == 1, 30, "the called e-mail")
    finally:
        server.stop()
    assert [m["Subject"] for m in relay.messages()] == ["Zapraszamy"]
    assert sorted(rows(server.database, "SELECT kind, state FROM notices")) == [
        ("called", "sent"),
        ("turn_near", "unknown"),
    ]


def test_a_resident_with_a_phone_gets_both_sms_through_gammu_smsd(tmp_path, broker, peer):
    smsd = GammuDaemon(tmp_path / "gammu").start()
    notify_toml(tmp_path, smsd=smsd)
    server = office(tmp_path, broker).start()
    try:
        issue(peer, "rej", "r1")
        mine = issue(peer, "rej", "r2")
        assert leave(server, mine["token"], "600 100 200").status_code == 303
        assert "+48 … 200" in server.anonymous_get(f"/t/{mine['token']}").text
        press(peer, "1", "n1")
        press(peer, "1", "n2")
        wait_for(lambda: len(smsd.sent()) == 2, 60, "two SMS transmitted by gammu-smsd")
    finally:
        server.stop()
        smsd.stop()
    texts = sorted(read_smsbackup(p).text for p in smsd.sent())
    numbers = {read_smsbackup(p).number for p in smsd.sent()}
    assert numbers == {"+48600100200"}
    assert texts[0] == "Urząd Testowy: A002 – Stanowisko 1, parter. Zapraszamy."
    assert texts[1].startswith("Urząd Testowy: A002 – przed Tobą 1 osoba (ok. ")
    assert "600100200" not in server.log() and "600 100 200" not in server.log()


@pytest.mark.parametrize(
    ("contact", "consent", "says"),
    [
        ("12345", True, "Nie można wysłać SMS na ten numer: zła liczba cyfr"),
        ("42 636 00 00", True, "to nie jest numer komórkowy"),  # a Łódź landline
        ("jan.kowalski@", True, "To nie wygląda na adres e-mail"),
        ("", True, "Wpisz numer telefonu lub adres e-mail"),
        (EMAIL, False, "Zaznacz zgodę"),
    ],
)
def test_a_bad_contact_is_refused_with_a_clear_sentence_and_nothing_is_stored(
    tmp_path, broker, peer, relay, contact, consent, says
):
    notify_toml(tmp_path, smtp_port=relay.port)
    server = office(tmp_path, broker).start()
    try:
        ticket = issue(peer, "rej", "r1")
        answer = leave(server, ticket["token"], contact, consent)
        assert answer.status_code == 422
        assert says in answer.text
        assert rows(server.database, "SELECT COUNT(*) FROM notify_contacts") == [(0,)]
        assert rows(server.database, "SELECT COUNT(*) FROM notices") == [(0,)]
    finally:
        server.stop()


def test_another_sites_form_cannot_leave_a_contact_and_a_flood_is_refused(tmp_path, broker, peer, relay):
    notify_toml(tmp_path, smtp_port=relay.port)
    server = office(tmp_path, broker).start()
    try:
        ticket = issue(peer, "rej", "r1")
        forged = leave(server, ticket["token"], EMAIL, headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403
        assert rows(server.database, "SELECT COUNT(*) FROM notify_contacts") == [(0,)]
        for _ in range(6):  # subscribe_rate = "6/10 minutes" per address
            assert leave(server, ticket["token"], "12345").status_code == 422
        flooded = leave(server, ticket["token"], EMAIL)
        assert flooded.status_code == 429 and "Zbyt wiele prób" in flooded.text
        assert rows(server.database, "SELECT COUNT(*) FROM notify_contacts") == [(0,)]
    finally:
        server.stop()


def test_a_resident_can_withdraw_and_gets_nothing(tmp_path, broker, peer, relay):
    relay.start()
    notify_toml(tmp_path, smtp_port=relay.port)
    server = office(tmp_path, broker).start()
    try:
        for i in range(4):
            issue(peer, "rej", f"r{i}")
        mine = issue(peer, "rej", "r9")
        assert leave(server, mine["token"], EMAIL).status_code == 303
        stop = server.anonymous_post(f"/t/{mine['token']}/notify/stop", data={"lang": "pl"}, follow_redirects=False)
        assert stop.status_code == 303
        assert rows(server.database, "SELECT COUNT(*) FROM notify_contacts") == [(0,)]
        for i in range(6):
            press(peer, "1", f"n{i}")
    finally:
        server.stop()
    assert relay.mailbox.envelopes == []
    assert rows(server.database, "SELECT COUNT(*) FROM notices") == [(0,)]
