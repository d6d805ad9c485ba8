"""The kiosk's MQTT side (kiosk/link.py) and config, without a screen: real broker, real server."""

from __future__ import annotations

import ast
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from kiosk.config import ConfigError, load_config
from kiosk.link import KioskLink
from protocol.messages import ServicesMessage, TicketResponse
from protocol.mqtt import BrokerConfig
from protocol.topics import Topics
from tests.harness import ROOT, run_tool, wait_for


class Recorder:
    def __init__(self) -> None:
        self.services: list[ServicesMessage] = []
        self.connection: tuple[bool, bool] = (False, False)
        self.responses: list[TicketResponse | None] = []
        self.answered = threading.Event()

    def done(self, response: TicketResponse | None) -> None:
        self.responses.append(response)
        self.answered.set()


@pytest.fixture
def link(broker):
    rec = Recorder()
    lk = KioskLink(
        "k9",
        BrokerConfig(port=broker.port),
        on_services=rec.services.append,
        on_connection=lambda b, s: setattr(rec, "connection", (b, s)),
    )
    lk.start()
    lk.rec = rec  # type: ignore[attr-defined]
    yield lk
    lk.stop()


def waiting(server, service: str) -> int:
    return next(q["waiting"] for q in server.get("/api/queues").json() if q["service"] == service)


def test_ticket_request_gets_the_servers_response(server, link):
    rec = link.rec
    wait_for(lambda: rec.connection == (True, True) and rec.services, 10, "connected, services known")
    assert [s.id for s in rec.services[-1].services] == ["rej", "pj", "pasz"]
    rid = link.request_ticket("pj", False, "en", 10, rec.done)
    assert rec.answered.wait(10)
    response = rec.responses[0]
    assert response is not None and response.ok and response.id == rid
    assert response.ticket is not None and response.ticket.number == "B001"
    assert response.ticket.status_path == f"/t/{response.ticket.token}"


def test_refused_request_carries_the_reason(server, link):
    rec = link.rec
    wait_for(lambda: rec.connection == (True, True), 10, "connected")
    link.request_ticket("nope", False, "pl", 10, rec.done)
    assert rec.answered.wait(10)
    assert rec.responses[0] is not None and not rec.responses[0].ok
    assert rec.responses[0].error.code == "unknown_service"


def test_request_in_flight_across_a_broker_restart_makes_exactly_one_ticket(server, broker, link):
    rec = link.rec
    wait_for(lambda: rec.connection == (True, True), 10, "connected")
    link.request_ticket("rej", False, "pl", 30, rec.done)
    broker.stop()  # the request may or may not have reached the server: either way, one ticket
    broker.start()
    assert rec.answered.wait(30)
    assert rec.responses[0] is not None and rec.responses[0].ok
    assert waiting(server, "rej") == 1


def test_no_answer_in_time_is_reported_as_none(broker, link):
    rec = link.rec  # a broker but no server: nobody answers
    wait_for(lambda: rec.connection[0], 10, "connected")
    assert link.request_ticket("rej", False, "pl", 1, rec.done) is not None
    assert rec.answered.wait(5)
    assert rec.responses == [None]


def test_no_request_is_sent_while_the_broker_is_down(broker, link):
    wait_for(lambda: link.rec.connection[0], 10, "connected")
    broker.stop()
    wait_for(lambda: not link.rec.connection[0], 10, "disconnect noticed")
    assert link.request_ticket("rej", False, "pl", 5, link.rec.done) is None


def test_unreadable_messages_are_ignored(server, link, peer):
    rec = link.rec
    wait_for(lambda: rec.services, 10, "services")
    before = len(rec.services)
    peer.publish(link.topics.services, b"{not json")
    peer.publish(link.response_topic, b'{"v": 1, "ok": "maybe"}')
    rid = link.request_ticket("nope", False, "pl", 10, rec.done)  # a refusal: the services stay as they are
    assert rec.answered.wait(10) and rec.responses[0] is not None and rec.responses[0].id == rid
    assert len(rec.services) == before  # the garbage never reached the app
    link.request_ticket("rej", False, "pl", 10, rec.done)  # and the link still works
    wait_for(lambda: len(rec.responses) == 2 and rec.responses[1] and rec.responses[1].ok, 10, "a ticket")


def test_fault_is_published_retained_and_only_when_it_changes(server, link, peer):
    wait_for(lambda: link.rec.connection[0], 10, "connected")
    peer.subscribe(link.topics.kiosk_fault("k9"))
    link.report_fault("paper_out", "the printer is out of paper")
    link.report_fault("paper_out", "the printer is out of paper")
    first = peer.expect(link.topics.kiosk_fault("k9"))
    assert (first["device"], first["fault"]) == ("k9", "paper_out")
    wait_for(lambda: server.get("/api/devices").json().get("kiosk-k9", {}).get("fault") == "paper_out", 10, "fault")
    link.report_fault("ok")
    assert peer.expect(link.topics.kiosk_fault("k9"))["fault"] == "ok"
    assert sum(1 for t, _p, _r in peer.seen if t == link.topics.kiosk_fault("k9")) == 2


def test_requests_carry_a_deadline_on_the_servers_clock_learnt_only_from_live_messages(broker, peer):
    """A retained services list may be hours old: it must not set expires_at, or a request
    would expire before it was sent (or, worse, far too late). No estimate: no deadline."""
    warsaw = timezone(timedelta(hours=1))
    old = datetime(2026, 11, 23, 6, 0, tzinfo=warsaw)  # what the server said before its outage
    stale = ServicesMessage(office="Urząd", services=[], server_time=old)
    topics = Topics(BrokerConfig().topic_base)
    peer.publish(topics.services, stale.to_json(), retain=True)
    peer.subscribe(topics.kiosk_request("k9"))
    rec = Recorder()
    lk = KioskLink("k9", BrokerConfig(port=broker.port), rec.services.append, lambda b, s: None)
    lk.start()
    try:
        wait_for(lambda: rec.services, 10, "the retained services list")
        lk.request_ticket("rej", False, "pl", 5, rec.done)
        first = peer.expect(topics.kiosk_request("k9"))
        assert first["expires_at"] is None, "a deadline from a retained (stale) server_time"

        live_time = datetime.now(warsaw).replace(microsecond=0)
        peer.publish(topics.services, ServicesMessage(office="Urząd", services=[], server_time=live_time).to_json())
        wait_for(lambda: len(rec.services) == 2, 10, "the live services message")
        lk.request_ticket("rej", False, "pl", 5, rec.done)
        second = peer.expect(topics.kiosk_request("k9"))
        deadline = datetime.fromisoformat(second["expires_at"])
        assert deadline.utcoffset() == timedelta(hours=1), "in the server's offset"
        # The live sample plus the 5 s timeout, plus the (short, not timed) while since it came.
        assert live_time + timedelta(seconds=5) <= deadline < live_time + timedelta(seconds=65)

        peer.publish(topics.server_availability, b"offline", retain=True)  # the server went away
        wait_for(lambda: lk.server_known and not lk.server_online, 10, "server offline")
        lk.request_ticket("rej", False, "pl", 5, rec.done)
        assert peer.expect(topics.kiosk_request("k9"))["expires_at"] is None, "forgotten with the server"
    finally:
        lk.stop()


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ('[kiosk]\nid = "k 1"\npublic_url = "http://x"\n', "kiosk.id"),
        ('[kiosk]\nid = "k1"\npublic_url = "numerek.local"\n', "kiosk.public_url"),
        ('[kiosk]\nid = "k1"\npublic_url = "http://x"\n[printer]\ntype = "netwrok"\n', "printer.type"),
        ('[kiosk]\nid = "k1"\npublic_url = "http://x"\n[mqtt]\nport = 99999\n', "mqtt.port"),
        ('[kiosk]\nid = "k1"\npublic_url = "http://x"\n[screen]\nfont = "/nope.ttf"\n', "screen.font"),
        ('[kiosk]\nid = "k1"\npublic_url = "http://x"\nfault_timeout_s = 5\n', "kiosk.fault_timeout_s"),
        ('[kiosk]\nid = "k1"\npublic_url = "http://x"\nfault_timeout_s = "long"\n', "kiosk.fault_timeout_s"),
        ("[kiosk\n", "not valid TOML"),
    ],
)
def test_bad_config_is_refused_with_the_field_named(tmp_path, body, complaint):
    path = tmp_path / "kiosk.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=complaint):
        load_config(path)
    cli = run_tool("kiosk.cli", "--config", str(path), "--check")
    assert cli.returncode == 2 and complaint in cli.stderr and "Traceback" not in cli.stderr


def test_example_config_is_valid_and_printer_status_is_reported(tmp_path):
    cfg = load_config(ROOT / "kiosk" / "examples" / "kiosk.toml")
    assert cfg.kiosk.id == "k1" and cfg.printer.type == "dummy"
    dead = tmp_path / "k.toml"
    dead.write_text('[kiosk]\nid = "k1"\npublic_url = "http://x"\n[printer]\ntype = "network"\nport = 9\n')
    out = run_tool("kiosk.cli", "--config", str(dead), "--printer-status", timeout=30)
    assert out.returncode == 1 and out.stdout.startswith("offline")


def test_kiosk_role_stays_light():
    """The kiosk must not pull in the server's stack (fastapi, uvicorn, sqlite_utils, server.*)."""
    heavy = {"fastapi", "uvicorn", "sqlite_utils", "server"}
    for path in [*(ROOT / "kiosk").glob("*.py"), ROOT / "hardware" / "printer.py"]:
        for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not {n.split(".")[0] for n in names} & heavy, f"{path.name} imports {names}"


def test_an_issued_ticket_reaches_the_printer_on_the_network_thread_while_the_ui_is_busy(server, broker):
    """Issue 14: the answer must not wait for the UI thread's next frame to start the printer.
    Here the UI thread never drains (a frame that takes forever): ``on_ticket`` still gets the
    ticket, on paho's thread; ``on_done`` comes only when the UI drains, with the same ticket."""
    rec = Recorder()
    woken = threading.Event()
    lk = KioskLink(
        "k8",
        BrokerConfig(port=broker.port),
        on_services=rec.services.append,
        on_connection=lambda b, s: setattr(rec, "connection", (b, s)),
        wake=woken.set,  # the UI is told, but does not drain until the test says so
    )
    lk.start()
    try:

        def drained_connection() -> bool:
            lk.drain()
            return rec.connection == (True, True)

        wait_for(drained_connection, 10, "connected")
        printed: list[tuple[str, str]] = []
        arrived = threading.Event()

        def on_ticket(response: TicketResponse) -> None:
            assert response.ticket is not None
            printed.append((response.ticket.number, threading.current_thread().name))
            arrived.set()

        lk.request_ticket("rej", False, "pl", 10, rec.done, on_ticket=on_ticket)
        assert arrived.wait(10), "the ticket did not reach the printer while the UI was busy"
        [(number, thread)] = printed
        assert number == "A001" and thread != threading.main_thread().name
        assert rec.responses == [], "the UI heard of the answer without draining"
        lk.drain()  # the UI, when it drains, gets the ticket
        assert rec.answered.is_set() and len(rec.responses) == 1
        assert rec.responses[0] is not None and rec.responses[0].ticket.number == "A001"
        lk.drain()
        assert len(rec.responses) == 1 and len(printed) == 1
    finally:
        lk.stop()
