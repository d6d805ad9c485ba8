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
    # every ACL excerpt of the section: the devices' and server's, then a branch's replicator
    acl_texts = re.findall(r"```text\n(.*?)```", section, flags=re.S)
    blocks = {
        block.splitlines()[0]: block.splitlines()[1:]
        for acl_text in acl_texts
        for block in acl_text.strip().split("\n\n")
    }
    accounts = {
        "user counter-4": Account("counter-4", "counter", ["4"]),
        "user kiosk-k1": Account("kiosk-k1", "kiosk", ["k1"]),
        "user display-hall-1": Account("display-hall-1", "display", ["hall-1"], ["hall"]),
        "user server": Account("server", "server"),
        "user replicator-wola": Account("replicator-wola", "replicator", ["wola"]),
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


# ---------------------------------------------------------------- rules the document states


def _table_rows(section: str, first_header: str) -> dict[str, list[str]]:
    """The rows of the Markdown table in ``section`` whose header starts with ``first_header``:
    first cell (without backticks) -> the other cells."""
    start = section.index(f"| {first_header} |")
    rows: dict[str, list[str]] = {}
    for line in section[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].replace("`", "")] = cells[1:]
    return rows


def test_every_mosquitto_pub_in_the_doc_sends_with_qos_1_as_the_topic_table_says():
    commands = re.findall(r"^\$? ?(mosquitto_(?:pub|sub) .*)$", DOC, flags=re.M)
    assert len(commands) >= 8
    for command in commands:
        assert re.search(r"\s-q 1\s", command), command


def test_the_ticket_number_and_clerk_id_rules_are_the_models_patterns():
    from protocol.messages import CLERK_PATTERN, MAX_TICKET_SEQ, TICKET_NUMBER_PATTERN, ticket_number

    numbers = _doc_section("Ticket numbers")
    assert f"`{TICKET_NUMBER_PATTERN}`" in numbers
    assert f"`{ticket_number('A', MAX_TICKET_SEQ)}`" in numbers and f"`{ticket_number('A', 1000)}`" in numbers
    assert f"`{CLERK_PATTERN}`" in _doc_section("Counter commands")


def test_the_fault_reports_required_fields_are_the_models():
    rows = _table_rows(_doc_section("Printer faults"), "field")
    required = {name for name, f in protocol.FaultReport.model_fields.items() if f.is_required()} | {"v"}
    assert set(rows) == set(protocol.FaultReport.model_fields)
    assert {name for name, cells in rows.items() if cells[1] == "yes"} == required


def test_the_http_examples_and_field_tables_are_the_servers_models():
    from server.domain import TicketStatus
    from server.http import Health, TicketStatusOut

    section = _doc_section("HTTP API for devices and phones")
    examples = re.findall(r"<!-- http: (\w+) -->\s*```json\n(.*?)```", section, flags=re.S)
    models = {"Health": Health, "TicketStatus": TicketStatusOut}
    assert {name for name, _ in examples} == set(models)
    for name, text in examples:
        models[name].model_validate(json.loads(text))
    ticket_fields = {
        f
        for row in _table_rows(section[section.index("`GET /api/tickets/<token>` (") :], "field")
        for f in row.split(", ")
    }
    assert ticket_fields == set(TicketStatusOut.model_fields)
    health = section[section.index("`GET /health`:") :]
    assert set(_table_rows(health, "field")) == set(Health.model_fields)
    statuses = _table_rows(section[section.index("`GET /api/tickets/<token>` (") :], "field")["status"][0]
    shown = set(re.findall(r"`(\w+)`", statuses))
    assert shown == {s.value for s in TicketStatus} - {"transferred"}  # a transferred ticket waits again
    assert "`404`" in section and "no ticket with this token" in section


def test_your_own_broker_lists_what_the_shipped_mosquitto_config_sets():
    conf = (ROOT / "systemd" / "mosquitto" / "numerek.conf").read_text()
    rows = _table_rows(_doc_section("Your own broker"), "setting (Mosquitto)")
    for setting in ("set_tcp_nodelay", "max_queued_messages", "max_packet_size"):
        (line,) = [row for row in rows if row.startswith(setting)]
        assert re.search(rf"^{re.escape(line)}$", conf, flags=re.M), line


def test_the_reconnect_and_republish_times_in_the_doc_are_the_codes():
    from protocol.device import RECONNECT_MAX_S, RECONNECT_MIN_S
    from server.service import TICK_SECONDS

    conventions = _doc_section("Conventions")
    assert f"after {RECONNECT_MIN_S:g} s, doubling to at most every {RECONNECT_MAX_S:g} s" in conventions
    assert f"every {TICK_SECONDS:g} seconds" in _doc_section("Availability")


def test_the_response_topics_the_doc_allows_are_the_ones_the_server_answers_on():
    t = protocol.Topics()
    section = _doc_section("Counter commands")
    (example,) = re.findall(r"`(numerek/counter/4/reply/[^`]+)`", section)
    assert t.reply_topic(t.parse(t.counter_command("4")), example) == example
    assert t.reply_topic(t.parse(t.counter_command("4")), t.zone_call("hall")) == t.counter_reply("4")


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


def test_the_call_field_table_is_the_call_message_model():
    """Every field of a call, ``place`` included, is explained once in docs/protocol.md."""
    rows = _table_rows(_doc_section("Calls"), "field")
    documented = {f for row in rows for f in row.split(", ")}
    assert documented == set(protocol.CallMessage.model_fields) - {"v"}
    assert "public.zone_names" in rows["place"][0], "where the place comes from"
