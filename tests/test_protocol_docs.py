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
    models = {"CounterCommand", "CounterReply", "CounterState", "CallMessage", "BoardMessage",
              "ServicesMessage", "TicketRequest", "TicketResponse", "FaultReport", "ErrorMessage"}
    assert models <= documented, f"undocumented: {models - documented}"


def test_every_documented_example_validates_against_its_model():
    assert len(EXAMPLES) >= 10
    for name, text in EXAMPLES:
        model = getattr(protocol, name)
        model.model_validate(json.loads(text))


def test_every_topic_in_the_tree_is_documented():
    t = protocol.Topics()
    for topic in (t.server_availability, t.device_availability("<device-id>"), t.services, t.errors,
                  t.counter_command("<counter-id>"), t.counter_reply("<counter-id>"), t.counter_state("<counter-id>"),
                  t.zone_call("<zone>"), t.zone_board("<zone>"), t.kiosk_request("<kiosk-id>"),
                  t.kiosk_response("<kiosk-id>"), t.kiosk_fault("<kiosk-id>")):
        assert f"`{topic}`" in DOC, topic


def test_every_error_code_is_documented():
    for code in protocol.ErrorCode:
        assert f"`{code.value}`" in DOC, code
