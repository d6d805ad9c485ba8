"""The Gammu gateway against the real gammu-smsd (Debian's, dummy phone driver, files backend)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notify.config import GammuConfig
from notify.gateways.gammu import GammuGateway, GammuSetupError
from notify.message import Channel, Delivery, Message, Outcome
from notify.sms_text import analyse
from tests.harness import wait_for
from tests.notify_support import GammuDaemon, read_smsbackup

NUMBER = "+48600100200"


@pytest.fixture
def smsd(tmp_path: Path) -> Iterator[GammuDaemon]:
    daemon = GammuDaemon(tmp_path / "gammu")
    yield daemon
    daemon.stop()


def gateway(smsd: GammuDaemon) -> GammuGateway:
    return GammuGateway(GammuConfig(smsdrc=smsd.rc, staging=smsd.root / "staging"))


def sms(text: str, key: str | None = None, urgent: bool = False, to: str = NUMBER) -> Message:
    return Message(Channel.SMS, to, text, key=key, urgent=urgent)


def test_a_polish_call_text_is_transmitted_to_the_number_as_ucs2(smsd):
    smsd.start()
    gw = gateway(smsd)
    text = "Starostwo Łódź: A023 – Stanowisko 4, parter. Zapraszamy."
    result = gw.send(sms(text, key="k1"))
    assert result.outcome is Outcome.ACCEPTED, result
    wait_for(lambda: gw.status(result.gateway_id) is Delivery.SENT, 60, "gammu-smsd to send it")
    [sent] = smsd.sent()
    got = read_smsbackup(sent)
    assert (got.number, got.text, got.unicode, got.parts) == (NUMBER, text, True, 1)
    assert any(f"to {NUMBER}" in line for line in smsd.transmitted())


@pytest.mark.parametrize(
    "text",
    [
        "ą" * 150,  # UCS-2: 67 a part when concatenated -> 3 parts
        "Numer A023, zapraszamy do stanowiska 4. " * 5,  # GSM-7, 200 septets -> 2 parts
        "Oplata 100 € [A] {B} " * 9,  # extension characters take two septets each
        "x" * 160,  # exactly one GSM-7 part
        "ż" * 70,  # exactly one UCS-2 part
    ],
)
def test_long_texts_go_as_concatenated_parts_in_the_count_the_office_is_shown(smsd, text):
    """Gammu's own splitting (what the operator bills) matches notify.sms_text's estimate."""
    gw = gateway(smsd)
    result = gw.send(sms(text))
    assert result.outcome is Outcome.ACCEPTED
    [queued] = smsd.outbox()
    got = read_smsbackup(queued)
    cost = analyse(text)
    assert got.text == text
    assert got.parts == cost.parts
    assert got.unicode == (cost.encoding == "ucs2")


def test_a_call_jumps_the_daemons_queue(smsd):
    gw = gateway(smsd)
    for i in range(3):
        gw.send(sms(f"Numer A02{i}: przed Toba 3 osoby.", to=f"+4860010030{i}"))
    gw.send(sms("Numer A099 - Stanowisko 4, parter.", urgent=True, to="+48600100399"))
    smsd.start()
    wait_for(lambda: len(smsd.transmitted()) == 4, 60, "four messages transmitted")
    assert "to +48600100399" in smsd.transmitted()[0]


def test_the_same_key_never_makes_a_second_sms_even_from_a_restarted_gateway(smsd):
    first = gateway(smsd).send(sms("Numer A023 – Stanowisko 4.", key="notice-7"))
    again = gateway(smsd).send(sms("Numer A023 – Stanowisko 4.", key="notice-7"))  # a new process, same key
    assert again.outcome is Outcome.ACCEPTED and again.gateway_id == first.gateway_id
    smsd.start()
    wait_for(lambda: len(smsd.sent()) == 1 and not smsd.outbox(), 60, "the message sent")
    third = gateway(smsd).send(sms("Numer A023 – Stanowisko 4.", key="notice-7"))  # found in sent/
    assert third.gateway_id == first.gateway_id
    wait_for(lambda: len(smsd.transmitted()) == 1, 10, "one transmission")
    assert len(smsd.sent()) == 1 and not smsd.outbox()


def test_status_follows_the_message_from_the_outbox_to_the_sent_or_error_folder(smsd):
    """Queued while in the outbox, sent once the daemon moved it, failed in the error folder.

    Gammu's dummy phone accepts every message, and a malformed outbox file sometimes hangs
    gammu-smsd 1.42 instead of moving it to the error folder, so the move the daemon makes
    when it gives up ("Moved to errorbox") is made here by hand, with the daemon stopped.
    """
    gw = gateway(smsd)
    ok = gw.send(sms("Numer A023.", key="ok-1"))
    bad = gw.send(sms("Numer A024.", key="bad-1"))
    assert gw.status(ok.gateway_id) is Delivery.QUEUED and gw.status(bad.gateway_id) is Delivery.QUEUED
    (smsd.root / "outbox" / bad.gateway_id).rename(smsd.root / "error" / bad.gateway_id)
    smsd.start()
    wait_for(lambda: gw.status(ok.gateway_id) is Delivery.SENT, 60, "the daemon to send it")
    assert gw.status(bad.gateway_id) is Delivery.FAILED
    assert gw.status("OUTC_nothing_like_it.smsbackup") is Delivery.UNKNOWN
    assert gw.send(sms("Numer A024.", key="bad-1")).gateway_id == bad.gateway_id  # never re-sent by itself


def test_what_gammu_cannot_send_is_refused_before_the_daemon_sees_it(smsd):
    gw = gateway(smsd)
    assert gw.send(sms("x", to="600100200")).outcome is Outcome.FAILED
    assert gw.send(sms("x", to="+48600100200/../../etc")).outcome is Outcome.FAILED
    assert gw.send(Message(Channel.EMAIL, "a@b.pl", "x")).outcome is Outcome.FAILED
    assert smsd.outbox() == []


def test_a_daemon_config_that_deletes_sent_messages_is_refused_with_the_reason(tmp_path):
    rc = tmp_path / "smsdrc"
    rc.write_text("[gammu]\n[smsd]\nservice = files\noutboxpath = /x/\nsentsmspath = /x/\nerrorsmspath = /y/\n")
    with pytest.raises(GammuSetupError, match="must differ"):
        GammuGateway(GammuConfig(smsdrc=rc, staging=tmp_path))
    rc.write_text("[gammu]\n[smsd]\nservice = sql\n")
    with pytest.raises(GammuSetupError, match="files"):
        GammuGateway(GammuConfig(smsdrc=rc, staging=tmp_path))


def test_purge_removes_sent_messages_with_their_numbers(smsd):
    gw = gateway(smsd)
    gw.send(sms("Numer A023.", key="old-1"))
    smsd.start()
    wait_for(lambda: len(smsd.sent()) == 1, 60, "sent")
    assert gw.purge(datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert smsd.sent() == []
