"""The kiosk's SMS keypad and document pick-up on real parts: the real server process, Mosquitto,
gammu-smsd with Gammu's dummy phone, aiosmtpd, and the real Kivy app under Xvfb.

The server's half is driven over MQTT exactly as the kiosk sends it (``phone`` and ``pickup`` in
a ``TicketRequest``, docs/protocol.md); the kiosk's half by taps and a scanner's keystrokes. The
rules without a screen or a server: tests/test_kiosk_cases_visit.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby
from pathlib import Path

import httpx
import pytest

from tests.harness import Broker, Peer, ServerProcess, VirtualScreen, free_port, wait_for
from tests.notify_support import GammuDaemon, read_smsbackup
from tests.test_kiosk import Kiosk, assert_fits
from tests.test_notify_pickup import PICKUP
from tests.test_notify_server import Relay, notify_toml, office, press, rows

BASE = "numerek"
NUMBER = "600100200"
CASE = "KM.5430.1.2026"


@pytest.fixture
def peer(broker) -> Iterator[Peer]:
    p = Peer(broker.port)
    p.subscribe(f"{BASE}/kiosk/+/response/#", f"{BASE}/counter/+/reply")
    yield p
    p.close()


@pytest.fixture
def smsd(tmp_path) -> Iterator[GammuDaemon]:
    daemon = GammuDaemon(tmp_path / "gammu").start()
    yield daemon
    daemon.stop()


@pytest.fixture
def relay() -> Iterator[Relay]:
    r = Relay(free_port()).start()
    yield r
    r.stop()


def ask(peer: Peer, rid: str, kiosk: str = "k1", **fields) -> dict:
    """A kiosk's ticket request, as kiosk/link.py sends it."""
    return peer.request(
        f"{BASE}/kiosk/{kiosk}/request",
        {"v": 1, "id": rid, "lang": "pl", **fields},
        response_topic=f"{BASE}/kiosk/{kiosk}/response/{rid}",
    )


def sms_office(tmp_path: Path, broker: Broker, smsd: GammuDaemon, relay: Relay | None = None, extra: str = ""):
    notify_toml(tmp_path, smtp_port=relay.port if relay else None, smsd=smsd)
    server = office(tmp_path, broker, retention=24)
    server.config.write_text(server.config.read_text(encoding="utf-8") + extra, encoding="utf-8")
    server.args += ["--log-level", "DEBUG"]  # every line the server can write, for the grep for the number
    return server.start()


def waiting(server: ServerProcess, service: str) -> int:
    return next(q["waiting"] for q in server.get("/api/queues").json() if q["service"] == service)


def type_keys(kiosk: Kiosk, text: str) -> None:
    """Tap the keypad's keys; a repeated key is clicked again in place (xdotool's ``mousemove
    --sync`` waits for a motion that never comes when the pointer is already there)."""
    for ch, run in groupby(text):
        kiosk.tap(f"key:{ch}", clicks=len(list(run)))


def no_number_in(text: str) -> bool:
    return all(form not in text for form in (NUMBER, "600 100 200", "600-100-200", "+48600100200"))


# ---------------------------------------------------------------------- the server's half


def test_a_number_from_the_kiosk_is_stored_with_the_ticket_and_the_call_reaches_gammu(tmp_path, broker, peer, smsd):
    server = sms_office(tmp_path, broker, smsd)
    try:
        assert ask(peer, "r1", service="rej")["ok"]
        answer = ask(peer, "r2", service="rej", phone="600 100 200")
        assert answer["ok"] and answer["phone"] == "subscribed", answer
        assert no_number_in(str(answer)), "the answer never repeats the number"
        plain = ask(peer, "r3", service="rej")
        assert "phone" not in plain, "no phone field for a kiosk that sent none (older kiosks refuse unknown fields)"
        token = answer["ticket"]["token"]
        # on disk with the ticket: the contact, its consent (the kiosk's sentence) and the ticket's row
        assert rows(
            server.database,
            "SELECT c.channel, c.recipient, c.consent, t.number FROM notify_contacts c "
            "JOIN tickets t ON t.id = c.ticket_id",
        ) == [("sms", "+48600100200", "kiosk-v1", "A002")]
        assert "+48 … 200" in server.anonymous_get(f"/t/{token}").text
        press(peer, "1", "n1")
        press(peer, "1", "n2")  # A002 is called
        wait_for(lambda: len(smsd.sent()) == 2, 60, "two SMS transmitted by gammu-smsd")
    finally:
        server.stop()
    texts = sorted(read_smsbackup(p).text for p in smsd.sent())
    assert {read_smsbackup(p).number for p in smsd.sent()} == {"+48600100200"}
    assert texts[0] == "Urząd Testowy: A002 – Stanowisko 1, parter. Zapraszamy."
    assert texts[1].startswith("Urząd Testowy: A002 – przed Tobą 1 osoba")
    assert no_number_in(server.log()), "the number is in no line of the server's log"


def test_a_bad_number_still_gives_the_ticket_and_both_rate_limits_hold(tmp_path, broker, peer, smsd):
    limits = 'kiosk_subscribe_rate = "3/10 minutes"\n'
    notify_toml(tmp_path, smsd=smsd)
    server = office(tmp_path, broker, retention=24)
    text = server.config.read_text(encoding="utf-8").replace('"6/10 minutes"', '"2/10 minutes"')
    server.config.write_text(text + limits, encoding="utf-8")
    server.args += ["--log-level", "DEBUG"]
    server.start()
    try:
        landline = ask(peer, "b1", service="rej", phone="42 636 00 00")
        assert landline["ok"] and landline["ticket"]["number"] == "A001" and landline["phone"] == "not_mobile"
        assert ask(peer, "b2", service="rej", phone="12345")["phone"] == "invalid"
        assert rows(server.database, "SELECT COUNT(*) FROM notify_contacts") == [(0,)], "nothing stored"
        outcomes = [
            ask(peer, "k1-a", service="rej", phone=NUMBER)["phone"],
            ask(peer, "k1-b", service="rej", phone=NUMBER)["phone"],
            ask(peer, "k1-c", service="rej", phone="600100201")["phone"],
            ask(peer, "k1-d", service="rej", phone="600100202")["phone"],  # the kiosk's 4th number in 10 min
        ]
        assert outcomes == ["subscribed", "subscribed", "subscribed", "rate_limited"]
        same = ask(peer, "k2-a", kiosk="k2", service="rej", phone=NUMBER)  # the number's 3rd, another kiosk
        assert same["ok"] and same["phone"] == "rate_limited"
        assert waiting(server, "rej") == 7, "every request got its ticket"
        assert rows(server.database, "SELECT COUNT(*) FROM notify_contacts") == [(3,)]
    finally:
        server.stop()
    assert no_number_in(server.log())


def test_a_ready_case_gives_one_pickup_ticket_and_records_the_arrival(tmp_path, broker, peer, smsd, relay):
    server = sms_office(tmp_path, broker, smsd, relay, PICKUP)
    try:
        form = {"reference": CASE, "contact": "jan.kowalski@example.pl", "document": "prawo_jazdy", "service": "pj"}
        assert server.post("/clerk/pickup", data={**form, "lang": "pl"}).status_code == 200
        assert '<a href="/clerk/pickup?lang=pl">Dokument gotowy do odbioru</a>' in server.get("/clerk/1").text
        unknown = ask(peer, "p0", pickup="KM.9/2026")
        assert not unknown["ok"] and unknown["error"]["code"] == "pickup_unknown"
        assert waiting(server, "pj") == 0, "a refusal issues nothing"
        answer = ask(peer, "p1", pickup=" km.5430.1.2026")  # as typed: case and spaces do not matter
        assert answer["ok"] and answer["ticket"]["service"] == "pj", answer
        number = answer["ticket"]["number"]
        ((reference, service, ticket, ready, arrived),) = rows(
            server.database, "SELECT reference, service, ticket, ready_at, arrived_at FROM pickup_arrivals"
        )
        assert (reference, service, ticket) == (CASE, "pj", number) and ready <= arrived
        again = ask(peer, "p2", pickup=CASE)
        assert not again["ok"] and again["error"]["code"] == "pickup_collected"
        assert number in again["error"]["message"]
        assert waiting(server, "pj") == 1
        assert ask(peer, "p1", pickup=CASE) == answer, "a redelivered request gets its first answer"

        # The manager's notices report counts the pick-up and the time from "ready" to arrival.
        from server.auth import Users

        users = Users(server._database())
        users.add("kierownik", "manager", "kierownik-haslo-2026")
        users.close()
        manager = httpx.Client(base_url=server.url, timeout=10)
        login = {"name": "kierownik", "password": "kierownik-haslo-2026"}
        assert manager.post("/login", data=login, follow_redirects=False).status_code == 303
        (week,) = manager.get("/reports/api/notices").json()["pickups"]
        assert (week["announced"], week["picked_up"]) == (1, 1)
        assert week["median_h"] == round((arrived - ready) / 3600, 1)
        page = manager.get("/reports/notices").text
        assert 'id="no-pickup-times"' not in page
        assert (
            '<a href="/reports/notices?lang=pl">Powiadomienia</a>' in manager.get("/reports").text
        )  # found from the menu
    finally:
        server.stop()


# ---------------------------------------------------------------------- the kiosk's half (Xvfb)


def start_kiosk(tmp_path, screen, broker, server, artifacts, name, width=1280, height=720) -> Kiosk:
    return Kiosk(
        tmp_path,
        screen,
        broker.port,
        server.url,
        'type = "dummy"\ndummy_output = "printed.bin"',
        artifacts / "kiosk" / name,
        width=width,
        height=height,
        idle_timeout_s=30,
        extra="sms = true\npickups = true\n",
    )


def test_a_resident_types_a_number_gets_a_ticket_with_sms_and_the_number_shows_nowhere_after(
    tmp_path, screen, broker, smsd, relay, artifacts, request
):
    server = sms_office(tmp_path, broker, smsd, relay, PICKUP)
    kiosk = start_kiosk(tmp_path, screen, broker, server, artifacts, request.node.name)
    try:
        form = {"reference": CASE, "contact": "jan.kowalski@example.pl", "document": "prawo_jazdy", "service": "pj"}
        assert server.post("/clerk/pickup", data={**form, "lang": "pl"}).status_code == 200
        home = kiosk.wait_home()
        assert "Odbiór dokumentu" in home["texts"]
        kiosk.tap("service:rej")
        keypad = kiosk.wait("the phone keypad", lambda e: e["screen"] == "phone")
        assert_fits(keypad, 1280, 720)
        assert "Bilet bez SMS" in keypad["texts"] and any(t.startswith("Wysyłając numer") for t in keypad["texts"])
        skip, send = keypad["boxes"]["sms_skip"], keypad["boxes"]["sms_send"]
        assert skip[2] * skip[3] > send[2] * send[3], "skipping is the biggest button"
        type_keys(kiosk, NUMBER)
        kiosk.wait("the number typed", lambda e: "600 100 200" in e["texts"])
        kiosk.tap("sms_send")
        shown = kiosk.wait("the ticket", lambda e: e["screen"] == "ticket" and e["printer"] is not None)
        assert "Wyślemy SMS, gdy zbliży się Twoja kolej." in shown["texts"]
        assert no_number_in(" ".join(shown["texts"])) and "200" not in shown["texts"]
        printed = kiosk.output.read_bytes()
        assert b"SMS na numer ...200" in printed and NUMBER.encode() not in printed
        assert rows(server.database, "SELECT recipient FROM notify_contacts") == [("+48600100200",)]

        kiosk.tap("done")
        kiosk.wait_home()
        kiosk.tap("pickup")
        kiosk.wait("the reference keypad", lambda e: e["screen"] == "pickup")
        kiosk.scan(CASE)  # a scanner acting as a keyboard
        ticket = kiosk.wait("the pick-up ticket", lambda e: e["screen"] == "ticket" and e["printer"] is not None)
        assert "Odbiór dokumentu" in ticket["texts"] and ticket["ticket"].startswith("B")
        printed = kiosk.output.read_bytes()
        assert "ODBIÓR DOKUMENTU".encode("cp852") in printed and f"Sygn. {CASE}".encode() in printed
        assert rows(server.database, "SELECT reference, ticket FROM pickup_arrivals") == [(CASE, ticket["ticket"])]
    finally:
        kiosk.stop()
        server.stop()
    assert no_number_in(kiosk.log_text()), "the number is in no line of the kiosk's log"
    assert no_number_in(server.log()), "nor the server's"


@pytest.mark.parametrize("panel", [(800, 480), (1920, 1080)], ids=["800x480", "1920x1080"])
def test_the_phone_and_pickup_keypads_fit_the_small_and_the_large_panel(
    panel, tmp_path, broker, smsd, artifacts, request
):
    width, height = panel
    screen = VirtualScreen(width, height)
    server = sms_office(tmp_path, broker, smsd)
    kiosk = start_kiosk(tmp_path, screen, broker, server, artifacts, request.node.name, width, height)
    try:
        kiosk.wait_home()
        kiosk.tap("service:rej")
        assert_fits(kiosk.wait("the phone keypad", lambda e: e["screen"] == "phone"), width, height)
        type_keys(kiosk, "12345")
        kiosk.tap("sms_send")
        note = kiosk.wait("the note", lambda e: any(t.startswith("To nie jest numer komórkowy") for t in e["texts"]))
        assert_fits(note, width, height)
        kiosk.tap("phone_back")
        kiosk.wait("home", lambda e: e["screen"] == "home")
        kiosk.tap("lang:en")
        english = kiosk.wait("English", lambda e: e["screen"] == "home" and e["lang"] == "en")
        kiosk.tap("pickup")
        assert_fits(kiosk.wait("the reference keypad", lambda e: e["screen"] == "pickup"), width, height)
        kiosk.tap("pickup_back")
        kiosk.wait("home", lambda e: e["screen"] == "home")
        kiosk.tap("service:rej")
        kiosk.wait(
            "the phone keypad in English", lambda e: e["screen"] == "phone" and "Ticket without SMS" in e["texts"]
        )
        assert_fits(kiosk.now(), width, height)
        type_keys(kiosk, NUMBER)
        kiosk.wait("the number typed", lambda e: "600 100 200" in e["texts"])
        kiosk.tap("sms_send")
        ticket = kiosk.wait("the ticket", lambda e: e["screen"] == "ticket" and e["printer"] is not None)
        assert "We will text you when your turn is near." in ticket["texts"]
        assert_fits(ticket, width, height)
        assert english["lang"] == "en"
    finally:
        kiosk.stop()
        server.stop()
        screen.stop()
