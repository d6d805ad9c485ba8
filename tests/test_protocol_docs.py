"""docs/protocol.md and protocol/messages.py are one contract: every example must validate."""

from __future__ import annotations

import json
import re

import protocol
from tests.harness import ROOT

DOC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
EXAMPLES = re.findall(r"<!-- model: (\w+) -->\s*```json\n(.*?)```", DOC, flags=re.S)


def test_every_message_model_has_an_example_in_the_docs():
    documented = {name for name, _ in EXAMPLES}
    models = {
        "CounterCommand",
        "CounterReply",
        "CounterState",
        "CallMessage",
        "BoardMessage",
        "ServicesMessage",
        "TicketRequest",
        "TicketResponse",
        "FaultReport",
        "ErrorMessage",
    }
    assert models <= documented, f"undocumented: {models - documented}"


def test_every_documented_example_validates_against_its_model():
    assert len(EXAMPLES) >= 10
    for name, text in EXAMPLES:
        model = getattr(protocol, name)
        model.model_validate(json.loads(text))


def test_every_topic_in_the_tree_is_documented():
    t = protocol.Topics()
    for topic in (
        t.server_availability,
        t.device_availability("<device-id>"),
        t.services,
        t.errors,
        t.counter_command("<counter-id>"),
        t.counter_reply("<counter-id>"),
        t.counter_state("<counter-id>"),
        t.zone_call("<zone>"),
        t.zone_board("<zone>"),
        t.kiosk_request("<kiosk-id>"),
        t.kiosk_response("<kiosk-id>"),
        t.kiosk_fault("<kiosk-id>"),
    ):
        assert f"`{topic}`" in DOC, topic


def test_every_error_code_is_documented():
    for code in protocol.ErrorCode:
        assert f"`{code.value}`" in DOC, code


def _doc_section(title: str) -> str:
    start = DOC.index(f"\n## {title}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end != -1 else None]


def test_broker_security_section_shows_the_acl_numerek_provision_generates():
    """The documented ACL is what provisioning writes today, not a hand-written memory of it."""
    from server.provision import Account, acl_rules

    section = _doc_section("Broker security")
    (acl_text,) = re.findall(r"```text\n(.*?)```", section, flags=re.S)
    blocks = {block.splitlines()[0]: block.splitlines()[1:] for block in acl_text.strip().split("\n\n")}
    accounts = {
        "user counter-4": Account("counter-4", "counter", ["4"]),
        "user kiosk-k1": Account("kiosk-k1", "kiosk", ["k1"]),
        "user display-hall-1": Account("display-hall-1", "display", ["hall-1"], ["hall"]),
        "user server": Account("server", "server"),
    }
    assert set(blocks) == set(accounts)
    for header, account in accounts.items():
        expected = [f"topic {access} {topic}" for access, topic in acl_rules(account, protocol.Topics())]
        assert blocks[header] == expected, header


def test_broker_security_section_matches_the_shipped_mosquitto_files():
    section = _doc_section("Broker security")
    conf = (ROOT / "systemd" / "mosquitto" / "numerek.conf").read_text()
    tls = (ROOT / "systemd" / "mosquitto" / "numerek-tls.conf").read_text()
    for setting in (
        "allow_anonymous false",
        "per_listener_settings false",
        "max_packet_size 65536",
        "password_file /etc/mosquitto/numerek/passwd",
        "acl_file /etc/mosquitto/numerek/acl",
        "use_username_as_clientid true",
    ):
        assert setting in conf and f"`{setting}" in section, setting
    assert "listener 8883" in tls and "use_username_as_clientid true" in tls
    assert "port 8883" in section.replace("**", "")


def test_the_estimated_wait_section_quotes_what_devices_show():
    """The range's words in the docs are protocol/waits.py's, and the examples show a range and a null."""
    from protocol.waits import GRID_MIN, TEXTS, wait_text

    section = " ".join(_doc_section("Services").split())  # words, whatever the line breaks
    for lang in ("pl", "en", "uk"):
        assert TEXTS["unknown"][lang] in section, lang
    for rng in ((0, 5), (15, 30), (120, 180)):
        assert f'`{list(rng)}` reads "{wait_text(rng, "pl")}"' in section
    assert ", ".join(str(g) for g in GRID_MIN[:12]) in section
    services = [s for name, text in EXAMPLES if name == "ServicesMessage" for s in json.loads(text)["services"]]
    assert [15, 30] in [s.get("estimated_wait_range_min") for s in services]
    assert None in [s.get("estimated_wait_range_min") for s in services]
