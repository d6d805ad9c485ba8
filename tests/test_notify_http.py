"""The HTTP SMS gateway against a provider's API on loopback that checks every request."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from pydantic import ValidationError

from notify.config import HttpFields, HttpSmsConfig
from notify.gateways.http_sms import HttpSmsGateway
from notify.message import Channel, Delivery, Message, Outcome
from tests.notify_support import Provider, Reply

TEXT = "Starostwo Łódź: A023 – Stanowisko 4, parter. Zapraszamy."


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.stop()


def config(provider: Provider, **over) -> HttpSmsConfig:
    base = dict(
        url=provider.url,
        token="t0ken-123",
        sender="Starostwo",
        callback_url="https://urzad.example.pl/notify/callback",
        extra={"encoding": "utf-8", "format": "json"},
        id_path="list.0.id",
        timeout_s=1.0,
        connect_timeout_s=1.0,
    )
    base.update(over)
    return HttpSmsConfig.model_validate(base)


def sms(key: str | None = "k-1") -> Message:
    return Message(Channel.SMS, "+48600100200", TEXT, key=key)


def test_every_request_carries_token_sender_recipient_utf8_text_key_and_callback(provider):
    gw = HttpSmsGateway(config(provider))
    result = gw.send(sms())
    assert result.outcome is Outcome.ACCEPTED and result.gateway_id == "m00001"
    [req] = provider.requests
    assert req.headers["Authorization"] == "Bearer t0ken-123"
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(req.body.decode("utf-8"))["message"] == TEXT  # the diacritics arrive intact
    assert req.fields == {
        "to": "48600100200",
        "message": TEXT,
        "from": "Starostwo",
        "idx": "k-1",
        "notify_url": "https://urzad.example.pl/notify/callback",
        "encoding": "utf-8",
        "format": "json",
    }


def test_a_form_api_with_its_own_field_names_gets_a_form_body(provider):
    fields = HttpFields(recipient="phone", message="text", sender="sender", idempotency_key=None, callback=None)
    provider.replies.append(Reply(200, {"success": True, "id": "abc"}))
    gw = HttpSmsGateway(config(provider, body="form", fields=fields, recipient_format="e164", id_path="id"))
    assert gw.send(sms()).gateway_id == "abc"
    [req] = provider.requests
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert req.fields == {
        "phone": "+48600100200",
        "text": TEXT,
        "sender": "Starostwo",
        "encoding": "utf-8",
        "format": "json",
    }


def test_a_refused_token_is_retried_later_with_a_reason_naming_the_token(provider):
    result = HttpSmsGateway(config(provider, token="wrong")).send(sms())
    assert result.outcome is Outcome.RETRY
    assert "token" in result.reason and "401" in result.reason
    assert provider.messages == []


def test_429_is_retried_after_the_providers_retry_after_in_seconds_or_as_a_date(provider):
    gw = HttpSmsGateway(config(provider))
    provider.replies.append(Reply(429, {"message": "slow down"}, {"Retry-After": "120"}))
    first = gw.send(sms())
    assert (first.outcome, first.retry_after) == (Outcome.RETRY, 120.0)
    when = datetime.now(UTC) + timedelta(minutes=10)
    provider.replies.append(Reply(429, None, {"Retry-After": format_datetime(when, usegmt=True)}))
    second = gw.send(sms())
    assert second.outcome is Outcome.RETRY and 500 < second.retry_after <= 600


@pytest.mark.parametrize(("status", "outcome"), [(503, Outcome.RETRY), (502, Outcome.RETRY), (500, Outcome.UNKNOWN)])
def test_an_overloaded_provider_is_a_retry_but_a_crash_inside_it_is_unknown(provider, status, outcome):
    provider.replies.append(Reply(status, {"message": "oops"}))
    assert HttpSmsGateway(config(provider)).send(sms()).outcome is outcome


def test_a_bad_request_or_an_error_instead_of_an_id_fails_for_good(provider):
    gw = HttpSmsGateway(config(provider))
    provider.replies.append(Reply(400, {"message": "invalid number"}))
    bad = gw.send(sms())
    assert bad.outcome is Outcome.FAILED and "invalid number" in bad.reason
    provider.replies.append(Reply(200, {"error": 13, "message": "no valid recipients"}))
    refused = gw.send(sms())
    assert refused.outcome is Outcome.FAILED and "no valid recipients" in refused.reason


def test_no_answer_after_the_request_is_unknown_but_no_connection_is_a_retry(provider):
    provider.replies.append(Reply(hang=True))
    hung = HttpSmsGateway(config(provider)).send(sms())
    assert hung.outcome is Outcome.UNKNOWN and "ReadTimeout" in hung.reason
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    nobody = config(provider, url=f"http://127.0.0.1:{closed_port}/sms.do")
    assert HttpSmsGateway(nobody).send(sms()).outcome is Outcome.RETRY


def test_a_provider_with_idempotency_keys_answers_a_repeat_with_the_first_id(provider):
    gw = HttpSmsGateway(config(provider, idempotent=True))
    assert gw.idempotent
    first, again = gw.send(sms("same")), gw.send(sms("same"))
    assert first.gateway_id == again.gateway_id and len(provider.messages) == 1


def test_delivery_reports_come_by_callback_or_by_asking(provider):
    gw = HttpSmsGateway(config(provider, status_url=f"http://127.0.0.1:{provider.port}/status/{{id}}"))
    sent = gw.send(sms())
    assert gw.status(sent.gateway_id) is Delivery.QUEUED
    provider.statuses[sent.gateway_id] = "DELIVERED"
    assert gw.status(sent.gateway_id) is Delivery.DELIVERED
    assert provider.requests[-1].headers["Authorization"] == "Bearer t0ken-123"
    assert gw.parse_delivery_report({"MsgId": sent.gateway_id, "status": "UNDELIVERED"}) == (
        sent.gateway_id,
        Delivery.FAILED,
    )
    assert gw.parse_delivery_report({"nonsense": "1"}) is None
    assert HttpSmsGateway(config(provider)).status("m00001") is None  # no status URL: callbacks only


def test_the_token_is_never_sent_over_plain_http_to_another_machine():
    with pytest.raises(ValidationError, match="https"):
        HttpSmsConfig(url="http://api.example.pl/sms.do", token="x", sender="Urzad")
    shown = repr(HttpSmsConfig(url="https://api.example.pl/sms.do", token="s3cret", sender="Urzad"))
    assert "s3cret" not in shown
