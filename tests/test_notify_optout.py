"""A resident's "STOP" by SMS, end to end on real parts: the real server process, Mosquitto,
gammu-smsd with Gammu's dummy phone (a text arrives at the phone, the daemon saves it in its
inbox folder, the server reads it) and an SMS provider's HTTP API with its inbound webhook.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from notify import optout
from notify.config import NotifySettings, RateLimit
from notify.message import Channel, NoticeKind
from notify.policy import Action, Policy, Row, State
from tests.harness import Broker, Peer, ServerProcess, free_port, wait_for, write_config
from tests.notify_support import GammuDaemon, Provider, read_smsbackup

BASE = "numerek"
NUMBER = "+48600100200"
SECRET = "s3cret-webhook-Key"

NOTIFY_SECTION = """
[notify]
config = "notify.toml"
near = { people = 3, minutes = 0 }
retention_hours = 24
inbound_rate = "8/minute"
optout_words = ["STOP", "NIE", "STOP SMS", "REZYGNUJĘ"]
"""


def notify_toml(folder: Path, smsd: GammuDaemon | None = None, provider: Provider | None = None) -> Path:
    text = f"""
sms = "{"modem" if smsd else "provider"}"

[notify]
office = "Urząd Testowy"
quiet_hours = {{ start = "00:00", end = "00:00" }}
rate_limit = {{ messages = 1, per_minutes = 10 }}    # the call after "near" waits: still pending at STOP
backoff = {{ first_s = 0.3, factor = 1, max_s = 1, max_attempts = 100 }}
"""
    if smsd:
        text += f"""
[gateways.modem]
type = "gammu"
smsdrc = "{smsd.rc}"
staging = "{smsd.root / "staging"}"
"""
    if provider:
        text += f"""
[gateways.provider]
type = "http"
url = "{provider.url}"
token = "{provider.token}"
sender = "Urzad"
id_path = "list.0.id"
inbound_secret = "{SECRET}"
"""
    path = folder / "notify.toml"
    path.write_text(text, encoding="utf-8")
    return path


def office(tmp_path: Path, broker: Broker) -> ServerProcess:
    http_port = free_port()
    cfg = write_config(tmp_path / "office.toml", broker.port, http_port)
    cfg.write_text(cfg.read_text(encoding="utf-8") + NOTIFY_SECTION, encoding="utf-8")
    return ServerProcess(cfg, http_port=http_port)


@pytest.fixture
def peer(broker) -> Iterator[Peer]:
    p = Peer(broker.port)
    p.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/+/reply")
    yield p
    p.close()


def issue(peer: Peer, rid: str) -> dict:
    reply = peer.request(
        f"{BASE}/kiosk/k1/request",
        {"v": 1, "id": rid, "service": "rej", "priority": False},
        response_topic=f"{BASE}/kiosk/k1/response/{rid}",
    )
    assert reply["ok"], reply
    return reply["ticket"]


def press(peer: Peer, rid: str) -> None:
    peer.publish(f"{BASE}/counter/1/command", {"v": 1, "id": rid, "action": "next"})
    assert peer.expect(f"{BASE}/counter/1/reply", where=lambda d: d["id"] == rid)["ok"]


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def leave(server: ServerProcess, token: str, contact: str) -> httpx.Response:
    data = {"contact": contact, "lang": "pl", "consent": "yes"}
    return server.anonymous_post(f"/t/{token}/notify", data=data, follow_redirects=False)


# ------------------------------------------------------------------------ the rules alone


@pytest.mark.parametrize("text", ["STOP", "stop", " Stop! ", "stóp", "Nie.", "nie", "STOP SMS", "stop-sms", "ŃIE"])
def test_a_stop_word_is_recognised_whatever_its_case_diacritics_or_punctuation(text):
    assert optout.matches(text, optout.DEFAULT_WORDS)


@pytest.mark.parametrize("text", ["nie wiem, o której mam przyjść", "STOPA", "", "Dziękuję", "NIE STOP"])
def test_a_sentence_that_only_contains_a_stop_word_is_not_an_opt_out(text):
    assert not optout.matches(text, optout.DEFAULT_WORDS)


def test_the_list_keeps_a_keyed_hash_that_another_key_cannot_reproduce():
    a, b = b"k" * 32, b"j" * 32
    assert optout.number_key(a, NUMBER) == optout.number_key(a, NUMBER)
    assert optout.number_key(a, NUMBER) != optout.number_key(b, NUMBER)
    assert "600100200" not in optout.number_key(a, NUMBER)


def test_the_confirmation_is_neither_held_by_quiet_hours_nor_by_the_rate_limit():
    policy = Policy(NotifySettings(office="U", rate_limit=RateLimit(messages=1, per_minutes=60)))
    row = Row(1, "optout:x", NUMBER, Channel.SMS, NoticeKind.OPTOUT_CONFIRMED, "pl", "k", 0, None, State.PENDING, 0, 0)
    assert policy.decide(row, 1000.0, [990.0]).action is Action.SEND


# ------------------------------------------------------------------------ gammu-smsd


def test_stop_by_sms_through_the_modem_cancels_pending_notices_confirms_once_and_refuses_the_number(
    tmp_path, broker, peer
):
    smsd = GammuDaemon(tmp_path / "gammu", receive_every_s=1).start()
    notify_toml(tmp_path, smsd=smsd)
    server = office(tmp_path, broker).start()
    try:
        issue(peer, "r1")
        mine = issue(peer, "r2")
        assert leave(server, mine["token"], "600 100 200").status_code == 303  # one ahead: "near" at once
        wait_for(lambda: len(smsd.sent()) == 1, 60, "the turn-near SMS")
        press(peer, "n1")
        press(peer, "n2")  # A002 called: the rate limit (1 an hour) holds the call back
        wait_for(
            lambda: (
                rows(server.database, "SELECT state, reason FROM notices WHERE kind = 'called'")
                == [("pending", "rate limit for this number")]
            ),
            30,
            "the call held by the rate limit",
        )

        smsd.receive(NUMBER, "Stop")
        wait_for(lambda: len(smsd.sent()) == 2, 60, "the confirmation SMS")
        assert rows(server.database, "SELECT state, reason FROM notices WHERE kind = 'called'") == [
            ("cancelled", optout.OPTED_OUT)
        ]
        confirmation = [read_smsbackup(p) for p in smsd.sent() if "START" in read_smsbackup(p).text]
        assert [c.text for c in confirmation] == [
            "Urząd Testowy: Nie będziesz już otrzymywać wiadomości od nas. Aby to cofnąć, odpisz START."
        ]
        assert confirmation[0].number == NUMBER

        smsd.receive(NUMBER, "STOP ")  # twice: still one confirmation
        wait_for(
            lambda: smsd.log_text().count(" Received IN") == 2 and smsd.inbox() == [],
            60,
            "the second STOP saved by the daemon and read by the server",  # it deletes the file after its commit
        )

        # the same number on a new ticket: refused with the reason; nothing stored
        other = issue(peer, "r3")
        refused = leave(server, other["token"], "+48 600-100-200")
        assert refused.status_code == 422
        assert "odpisano z niego STOP" in refused.text
        assert rows(server.database, "SELECT COUNT(*) FROM notify_contacts WHERE ticket_id = 3") == [(0,)]
    finally:
        server.stop()
        smsd.stop()
    assert rows(server.database, "SELECT COUNT(*) FROM notices WHERE kind = 'optout_confirmed'") == [(1,)]
    assert len(smsd.sent()) == 2
    stored = rows(server.database, "SELECT hash, via FROM notify_optouts")
    assert len(stored) == 1 and stored[0][1] == "modem" and "600100200" not in stored[0][0]
    log = server.log()
    assert "600100200" not in log and "600 100 200" not in log and "600-100-200" not in log


def test_a_number_that_said_stop_is_told_so_at_the_kiosk_and_its_ticket_is_still_issued(tmp_path, broker, peer):
    """Without the check the kiosk promised "we will send an SMS" and the outbox then cancelled
    every message to the number: the resident waited for a text that could never come."""
    smsd = GammuDaemon(tmp_path / "gammu", receive_every_s=1).start()
    notify_toml(tmp_path, smsd=smsd)
    server = office(tmp_path, broker).start()
    try:
        smsd.receive(NUMBER, "STOP")
        wait_for(lambda: len(smsd.sent()) == 1, 60, "the opt-out confirmation")
        reply = peer.request(
            f"{BASE}/kiosk/k1/request",
            {"v": 1, "id": "k1", "service": "rej", "phone": "600 100 200", "lang": "pl"},
            response_topic=f"{BASE}/kiosk/k1/response/k1",
        )
        assert reply["ok"] and reply["ticket"]["number"] == "A001"
        assert reply["phone"] == "opted_out"
        assert rows(server.database, "SELECT COUNT(*) FROM notify_contacts") == [(0,)]
    finally:
        server.stop()
        smsd.stop()
    assert "600100200" not in server.log()


# ------------------------------------------------------------------------ a provider's webhook


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.stop()


def test_a_providers_webhook_needs_the_secret_refuses_bad_input_and_confirms_once(tmp_path, broker, peer, provider):
    notify_toml(tmp_path, provider=provider)
    server = office(tmp_path, broker).start()
    url = f"http://127.0.0.1:{server.http_port}/notify/sms/provider"
    good = {"sms_from": "48600100200", "sms_text": "nie", "sms_to": "Urzad"}
    try:
        assert httpx.post(url, data=good).status_code == 401  # no secret
        assert httpx.post(url, data=good, headers={"X-Numerek-Secret": "guess"}).status_code == 401
        auth = {"X-Numerek-Secret": SECRET}
        missing = httpx.post(url, data={"sms_from": "48600100200"}, headers=auth)
        assert missing.status_code == 400 and "sms_text" in missing.text
        not_a_number = httpx.post(url, data={**good, "sms_from": "12"}, headers=auth)
        assert not_a_number.status_code == 400
        wrong_place = f"http://127.0.0.1:{server.http_port}/notify/sms/modem"
        assert httpx.post(wrong_place, data=good, headers=auth).status_code == 404
        assert rows(server.database, "SELECT COUNT(*) FROM notify_optouts") == [(0,)]

        # the provider's callback URL with basic auth (https://numerek:SECRET@host/…), a form post
        done = httpx.post(url, data=good, auth=("numerek", SECRET))
        assert done.status_code == 200 and done.text == "OK opted_out"
        again = httpx.post(url, json={**good, "sms_text": "STOP"}, headers=auth)
        assert again.status_code == 200 and again.text == "OK already"
        wait_for(lambda: len(provider.messages) == 1, 30, "the confirmation through the provider")
        assert provider.messages[0]["to"] == "48600100200"
        assert provider.messages[0]["message"].startswith("Urząd Testowy: Nie będziesz już otrzymywać")

        for _ in range(2):  # inbound_rate = 8/minute: 7 calls so far
            httpx.post(url, data=good, headers=auth)
        flooded = httpx.post(url, data=good, headers=auth)
        assert flooded.status_code == 429

        ticket = issue(peer, "r1")
        assert leave(server, ticket["token"], "600 100 200").status_code == 422
    finally:
        server.stop()
    assert len(provider.messages) == 1
    assert rows(server.database, "SELECT COUNT(*) FROM notify_optouts") == [(1,)]
    assert "600100200" not in server.log()


def test_start_takes_a_number_off_the_list_and_it_may_subscribe_again(tmp_path, broker, peer, provider):
    notify_toml(tmp_path, provider=provider)
    server = office(tmp_path, broker).start()
    url = f"http://127.0.0.1:{server.http_port}/notify/sms/provider"
    auth = {"X-Numerek-Secret": SECRET}
    try:
        assert httpx.post(url, data={"sms_from": "48600100200", "sms_text": "STOP"}, headers=auth).status_code == 200
        ticket = issue(peer, "r1")
        assert leave(server, ticket["token"], "600 100 200").status_code == 422
        back = httpx.post(url, data={"sms_from": "48600100200", "sms_text": "start"}, headers=auth)
        assert back.text == "OK resumed"
        assert leave(server, ticket["token"], "600 100 200").status_code == 303
    finally:
        server.stop()
