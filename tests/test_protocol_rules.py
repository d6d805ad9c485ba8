"""Protocol rules that are easy to get wrong at the edges (issue 12, "Devices and payloads").

Deadlines are ISO 8601 times with an offset and nothing else; a ticket number has one
format every device can call and show; clerk ids cannot become spreadsheet formulas;
availability is ``online`` or ``offline``. The model tests run in milliseconds; the two
over MQTT run against the real server to show what a device would see.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from protocol.messages import (
    MAX_TICKET_SEQ,
    CallMessage,
    CounterAction,
    CounterCommand,
    TicketRequest,
    ticket_number,
)
from protocol.mqtt import response_properties
from protocol.topics import Topics
from server.engine import QueueEngine
from tests.engine_support import FakeClock, Tokens, office_config

T = Topics()
WARSAW = timezone(timedelta(hours=1))

NOT_A_DEADLINE = [
    "9999999999",  # a digit string read as Unix time: a deadline in 2286
    "-1",  # 1969
    "1700000000.5",
    "2026-11-23T09:15:05",  # no offset: any of 24 moments
    "2026-11-23 09:15:05+01:00",  # not the protocol's ISO form
    "2026-11-23",
    "09:15:05+01:00",
    "tomorrow",
    "",
]


@pytest.mark.parametrize("value", [*NOT_A_DEADLINE, 9999999999, -1, 1.5, True])
@pytest.mark.parametrize("model", [CounterCommand, TicketRequest])
def test_expires_at_is_only_an_iso_time_with_an_offset_in_commands_and_ticket_requests(model, value):
    body = {"v": 1, "id": "x1", "expires_at": value}
    body.update({"action": "next"} if model is CounterCommand else {"service": "rej"})
    for strict in (True, False):
        with pytest.raises(ValidationError) as err:
            model.model_validate_json(json.dumps(body), strict=strict)
        assert err.value.errors()[0]["loc"] == ("expires_at",)
        assert "ISO 8601 time with a UTC offset" in str(err.value) or "UTC offset" in str(err.value)


@pytest.mark.parametrize(
    "value",
    ["2026-11-23T09:15:05+01:00", "2026-11-23T09:15:05.120000+01:00", "2026-11-23T08:15:05Z", "2026-11-23T09:15+01:00"],
)
def test_an_iso_time_with_an_offset_is_a_deadline(value):
    cmd = CounterCommand.model_validate_json(
        json.dumps({"v": 1, "id": "x", "action": "next", "expires_at": value}), strict=True
    )
    assert cmd.expires_at is not None and cmd.expires_at.utcoffset() is not None


def test_a_device_building_its_command_in_python_still_needs_an_offset():
    CounterCommand(id="x", action=CounterAction.NEXT, expires_at=datetime(2026, 11, 23, 9, 0, tzinfo=WARSAW))
    with pytest.raises(ValidationError, match="UTC offset"):
        CounterCommand(id="x", action=CounterAction.NEXT, expires_at=datetime(2026, 11, 23, 9, 0))


@pytest.mark.parametrize("number", ["A001", "A999", "A1000", "A9999", "A10000", "AB123456", "Z999999"])
def test_every_number_the_engine_can_issue_can_be_called_by_a_counter(number):
    CounterCommand(id="x", action=CounterAction.CALL, ticket=number)
    CallMessage(seq=1, ticket=number, service="s", counter="1", counter_name="S1", zone="hall", at=datetime.now(WARSAW))


@pytest.mark.parametrize("number", ["A01", "a001", "A0001", "ABC001", "A1000000", "A-001", "001", "A 001", ""])
def test_anything_else_is_not_a_ticket_number(number):
    with pytest.raises(ValidationError):
        CounterCommand(id="x", action=CounterAction.CALL, ticket=number)


def test_numbers_have_at_least_three_digits_and_no_fixed_width_up_to_the_maximum():
    assert [ticket_number("A", n) for n in (1, 999, 1000, 10_000, MAX_TICKET_SEQ)] == [
        "A001",
        "A999",
        "A1000",
        "A10000",
        "A999999",
    ]
    with pytest.raises(ValueError):
        ticket_number("A", MAX_TICKET_SEQ + 1)


def test_the_10000th_ticket_of_a_day_can_be_called_by_its_number():
    """Before: the number pattern allowed 4 digits, so A10000 could be issued but not called."""
    clock = FakeClock()
    engine = QueueEngine(office_config(), clock, token_factory=Tokens())
    engine.issue("rej")  # A001: the office day has begun
    engine.last_seq["A"] = 9_999  # as if the day had issued 9,999 tickets of the service
    ticket, _ahead = engine.issue("rej")
    assert ticket.number == "A10000"
    called = engine.command("1", CounterCommand(id="c1", action=CounterAction.CALL, ticket=ticket.number))
    assert called is not None and called.number == "A10000"
    assert engine.command("1", CounterCommand(id="c2", action=CounterAction.CALL, ticket="A001")).number == "A001"


@pytest.mark.parametrize(
    "clerk",
    [
        '=HYPERLINK("http://x")',
        "+1207",
        "-1207",
        "@SUM(A1)",
        " 1207",
        "12 07",
        "1207\n",
        "\t1207",
        "x" * 33,
        "",
        "ł1207",
    ],
)
def test_a_clerk_id_that_could_become_a_spreadsheet_formula_or_is_not_printable_is_refused(clerk):
    with pytest.raises(ValidationError) as err:
        CounterCommand(id="x", action=CounterAction.SIGN_IN, clerk=clerk)
    assert err.value.errors()[0]["loc"] == ("clerk",)


@pytest.mark.parametrize("clerk", ["1207", "anna.k", "k_nowak", "B-12", "x" * 32])
def test_badge_numbers_and_logins_are_clerk_ids(clerk):
    assert CounterCommand(id="x", action=CounterAction.SIGN_IN, clerk=clerk).clerk == clerk


def _request(peer, topic: str, payload: dict, answer_on: str) -> dict:
    peer.client.publish(
        topic, json.dumps(payload), qos=1, properties=response_properties(answer_on, b"corr-" + payload["id"].encode())
    ).wait_for_publish(5)
    return peer.expect(answer_on, where=lambda d: d["id"] == payload["id"])


@pytest.mark.parametrize("deadline", ["9999999999", "-1"])
def test_the_server_refuses_a_unix_time_deadline_and_issues_or_calls_nothing(server, peer, deadline):
    answer_on = T.kiosk_response("k1", "rules")
    peer.subscribe(T.filter(T.parse(answer_on).kind, "k1"), T.counter_reply("1"))
    refused = _request(
        peer, T.kiosk_request("k1"), {"v": 1, "id": "t1", "service": "rej", "expires_at": deadline}, answer_on
    )
    assert not refused["ok"] and refused["error"]["code"] == "invalid_request"
    assert refused["error"]["message"].startswith("expires_at:")
    assert all(q["waiting"] == 0 for q in server.get("/api/queues").json())
    issued = _request(peer, T.kiosk_request("k1"), {"v": 1, "id": "t2", "service": "rej"}, answer_on)
    assert issued["ok"]
    peer.publish(T.counter_command("1"), {"v": 1, "id": "n1", "action": "next", "expires_at": deadline})
    reply = peer.expect(T.counter_reply("1"), where=lambda d: d["id"] == "n1")
    assert reply["error"]["code"] == "invalid_request" and reply["error"]["message"].startswith("expires_at:")
    assert server.get("/api/counters/1").json()["ticket"] is None  # nobody was called


def test_the_server_refuses_a_formula_as_clerk_id(server, peer):
    peer.subscribe(T.counter_reply("1"))
    peer.publish(T.counter_command("1"), {"v": 1, "id": "s1", "action": "sign_in", "clerk": '=HYPERLINK("http://x")'})
    reply = peer.expect(T.counter_reply("1"), where=lambda d: d["id"] == "s1")
    assert reply["error"]["code"] == "invalid_request" and reply["error"]["message"].startswith("clerk:")
    peer.publish(T.counter_command("1"), {"v": 1, "id": "s2", "action": "sign_in", "clerk": "1207"})
    assert peer.expect(T.counter_reply("1"), where=lambda d: d["id"] == "s2")["ok"]


@pytest.mark.parametrize(
    ("current", "ok"), [("", True), ("A001", True), ("A10000", True), ("A01", False), ("x", False)]
)
def test_current_is_a_ticket_number_or_empty_and_an_error_names_the_field_plainly(current, ok):
    body = json.dumps({"v": 1, "id": "x", "action": "next", "current": current})
    if ok:
        assert CounterCommand.model_validate_json(body, strict=True).current == current
        return
    with pytest.raises(ValidationError) as err:
        CounterCommand.model_validate_json(body, strict=True)
    assert [e["loc"] for e in err.value.errors()] == [("current",)]
