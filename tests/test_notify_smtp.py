"""The SMTP gateway against a real SMTP server (aiosmtpd) with STARTTLS and login."""

from __future__ import annotations

import email
import ssl
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from notify.config import SmtpConfig
from notify.gateways.smtp import SmtpGateway
from notify.message import Channel, Message, Outcome
from notify.templates import Rendered
from tests.harness import free_port
from tests.notify_support import Mailbox

TEXT = "Starostwo Łódź: Prawo jazdy do odbioru w Wydziale Komunikacji, stan. 7, pn–pt 8–15."


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"urzad", b"haslo-123")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def relay(tmp_path: Path, ca: trustme.CA) -> Iterator[tuple[Controller, Mailbox, Path]]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    box = Mailbox()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
    )
    controller.start()
    yield controller, box, ca_file
    controller.loop.call_soon_threadsafe(box.released.set)
    controller.stop()


def gateway(relay, **over) -> SmtpGateway:
    controller, _box, ca_file = relay
    base = dict(
        host="127.0.0.1",
        port=controller.port,
        security="starttls",
        username="urzad",
        password="haslo-123",
        sender="powiadomienia@starostwo.example.pl",
        sender_name="Starostwo Łódź",
        ca_file=ca_file,
        timeout_s=30.0,  # a bound for a mail server that hangs; 2 s failed a STARTTLS handshake at load 18
    )
    base.update(over)
    return SmtpGateway(SmtpConfig.model_validate(base))


def mail(to: str = "jan.kowalski@example.pl") -> Message:
    rendered = Rendered("Dokument do odbioru", TEXT)
    return Message(Channel.EMAIL, to, rendered.text, rendered.subject, rendered.html(), key="n42")


def test_an_email_arrives_over_starttls_after_login_with_text_and_html(relay):
    result = gateway(relay).send(mail())
    assert result.outcome is Outcome.ACCEPTED
    assert result.gateway_id == "<n42@starostwo.example.pl>"
    [envelope] = relay[1].envelopes
    assert envelope.rcpt_tos == ["jan.kowalski@example.pl"]
    parsed = email.message_from_bytes(envelope.original_content, policy=policy.default)
    assert parsed["Subject"] == "Dokument do odbioru"
    assert parsed["Message-ID"] == "<n42@starostwo.example.pl>"
    assert "Starostwo Łódź" in str(parsed["From"])
    assert parsed.get_body(("plain",)).get_content().strip() == TEXT
    assert "pn–pt 8–15" in parsed.get_body(("html",)).get_content()


def test_a_refused_recipient_fails_for_good_on_5xx_and_is_retried_on_4xx(relay):
    box = relay[1]
    box.refuse["nobody@example.pl"] = "550 5.1.1 no such user"
    box.refuse["full@example.pl"] = "452 4.2.2 mailbox full"
    gw = gateway(relay)
    gone = gw.send(mail("nobody@example.pl"))
    assert gone.outcome is Outcome.FAILED and "550" in gone.reason
    assert gw.send(mail("full@example.pl")).outcome is Outcome.RETRY
    assert box.envelopes == []


def test_a_wrong_password_is_retried_with_a_reason_naming_the_login(relay):
    result = gateway(relay, password="zle").send(mail())
    assert result.outcome is Outcome.RETRY and "login" in result.reason


def test_a_relay_whose_certificate_is_not_trusted_gets_nothing(relay):
    result = gateway(relay, ca_file=None).send(mail())  # the system's CAs do not know the test CA
    assert result.outcome is Outcome.RETRY and relay[1].envelopes == []


def test_no_answer_after_the_message_is_unknown(relay):
    relay[1].stall_data = True
    result = gateway(relay, timeout_s=5.0).send(mail())  # the wait this test is about
    assert result.outcome is Outcome.UNKNOWN


def test_a_password_is_never_configured_without_encryption():
    with pytest.raises(ValueError, match="unencrypted"):
        SmtpConfig(host="h", sender="a@b.pl", security="none", username="u", password="p")
