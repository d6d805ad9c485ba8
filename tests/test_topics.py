"""The topic tree (protocol/topics.py): built, parsed and access-checked in one place only."""

from __future__ import annotations

import re

import pytest

from protocol.topics import SHAPES, Availability, Route, RouteKind, Topics, parse_availability
from tests.harness import ROOT

T = Topics()
K = RouteKind

# Every topic docs/protocol.md lists (its "Topic tree" table), as a device sends or reads it.
DOCUMENTED = [
    ("numerek/server/availability", K.SERVER_AVAILABILITY, None, None),
    ("numerek/device/counter-4/availability", K.DEVICE_AVAILABILITY, "counter-4", None),
    ("numerek/services", K.SERVICES, None, None),
    ("numerek/counter/4/command", K.COUNTER_COMMAND, "4", None),
    ("numerek/counter/4/reply", K.COUNTER_REPLY, "4", None),
    ("numerek/counter/4/reply/unit-7f3a", K.COUNTER_REPLY, "4", "unit-7f3a"),
    ("numerek/counter/4/state", K.COUNTER_STATE, "4", None),
    ("numerek/zone/hall/call", K.ZONE_CALL, "hall", None),
    ("numerek/zone/first-floor/board", K.ZONE_BOARD, "first-floor", None),
    ("numerek/kiosk/k1/request", K.KIOSK_REQUEST, "k1", None),
    ("numerek/kiosk/k1/response", K.KIOSK_RESPONSE, "k1", None),
    ("numerek/kiosk/k1/response/3f9c2a/x", K.KIOSK_RESPONSE, "k1", "3f9c2a/x"),
    ("numerek/kiosk/k1/fault", K.KIOSK_FAULT, "k1", None),
    ("numerek/server/errors", K.SERVER_ERRORS, None, None),
    ("numerek/replica/wola/events", K.REPLICA_EVENTS, "wola", None),
    ("numerek/replica/wola/resend", K.REPLICA_RESEND, "wola", None),
    ("numerek/replica/wola/config", K.REPLICA_CONFIG, "wola", None),
    ("numerek/replica/wola/config-result", K.REPLICA_CONFIG_RESULT, "wola", None),
]
REPLICA = (K.REPLICA_EVENTS, K.REPLICA_RESEND)  # the branch's replicator and the centre, not the server


@pytest.mark.parametrize(("topic", "kind", "ident", "sub"), DOCUMENTED)
def test_every_documented_topic_parses_to_its_kind_and_id(topic, kind, ident, sub):
    assert T.parse(topic) == Route(kind, topic, ident, sub)


def test_the_documented_list_covers_every_kind_and_the_doc_lists_each_topic():
    assert {kind for _t, kind, _i, _s in DOCUMENTED} == {s.kind for s in SHAPES}
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    for shape in SHAPES:
        placeholder = {
            "device": "<device-id>",
            "counter": "<counter-id>",
            "zone": "<zone>",
            "kiosk": "<kiosk-id>",
            "replica": "<branch-id>",
        }
        topic = T.filter(shape.kind, placeholder.get(shape.levels[0], "")).removesuffix("/#")
        assert f"`{topic}`" in doc, topic


@pytest.mark.parametrize(
    "topic",
    [
        "numerek/counter/4",  # a level missing
        "numerek/counter/4/commands",  # a typo
        "numerek/kiosk/k1/reqest",
        "numerek/zone/hall/cal",
        "numerek/counter/1/command/x",  # a level too many below a topic that has none
        "numerek/counter//command",  # an empty id
        "numerek/counter/a b/command",  # not an identifier
        "numerek/counter/+/command",  # a wildcard is no id
        "numerek/counter/" + "x" * 33 + "/command",  # too long
        "numerek/kiosk/k1/response/",  # an empty level below a response topic
        "numerek/kiosk/k1/response/a/#",
        "numerek/foo/bar",
        "numerek/foo",
        "numerek",
        "numerek/",
        "other/counter/4/command",  # another office's base
        "numerekx/services",
        "numerek/Services",
        "",
    ],
)
def test_typos_and_foreign_topics_are_unknown(topic):
    route = T.parse(topic)
    assert route.kind is K.UNKNOWN and not route.known and not route.from_server and not route.from_device


def test_another_base_is_parsed_under_its_own_base_only():
    office = Topics("urzad2")
    assert office.parse("urzad2/counter/4/command").kind is K.COUNTER_COMMAND
    assert office.parse("numerek/counter/4/command").kind is K.UNKNOWN


def test_what_is_built_is_parsed_back():
    for shape in SHAPES:
        topic = T.filter(shape.kind, "x-1").removesuffix("/#")
        route = T.parse(topic)
        assert route.kind is shape.kind
        assert route.id == ("x-1" if "<id>" in shape.levels else None)
    assert T.parse(T.kiosk_response("k1", "abc")).sub == "abc"
    assert T.parse(T.counter_reply("4", "u1")).sub == "u1"


def test_directions_tell_the_server_what_to_serve_and_what_is_its_own_output():
    # The centre's pushed configuration is for the server too (it validates and applies it).
    devices = {K.COUNTER_COMMAND, K.KIOSK_REQUEST, K.KIOSK_FAULT, K.DEVICE_AVAILABILITY, K.REPLICA_CONFIG}
    for topic, kind, _i, _s in DOCUMENTED:
        route = T.parse(topic)
        assert route.from_device == (kind in devices), topic
        assert route.from_server == (kind not in devices), topic


@pytest.mark.parametrize(
    ("request_topic", "asked", "answer"),
    [
        ("numerek/counter/4/command", None, "numerek/counter/4/reply"),
        ("numerek/counter/4/command", "numerek/counter/4/reply", "numerek/counter/4/reply"),
        ("numerek/counter/4/command", "numerek/counter/4/reply/u1", "numerek/counter/4/reply/u1"),
        ("numerek/counter/4/command", "numerek/counter/1/reply/u1", "numerek/counter/4/reply"),  # another counter's
        ("numerek/counter/4/command", "numerek/zone/hall/call", "numerek/counter/4/reply"),  # a forged call
        ("numerek/counter/4/command", "numerek/counter/4/reply/#", "numerek/counter/4/reply"),
        ("numerek/counter/4/command", "numerek/counter/4/replyx", "numerek/counter/4/reply"),
        ("numerek/kiosk/k1/request", "numerek/kiosk/k1/response/s1", "numerek/kiosk/k1/response/s1"),
        ("numerek/kiosk/k1/request", "numerek/kiosk/k2/response/s1", "numerek/kiosk/k1/response"),
        ("numerek/kiosk/k1/request", "", "numerek/kiosk/k1/response"),
        ("numerek/kiosk/k1/fault", "numerek/kiosk/k1/response", "numerek/server/errors"),
        ("numerek/foo", None, "numerek/server/errors"),
    ],
)
def test_a_request_is_answered_on_its_own_reply_tree_only(request_topic, asked, answer):
    assert T.reply_topic(T.parse(request_topic), asked) == answer


def _matches(filter_: str, topic: str) -> bool:
    import paho.mqtt.client as mqtt

    return mqtt.topic_matches_sub(filter_, topic)


@pytest.mark.parametrize(
    ("role", "ids", "zones", "device"),
    [
        ("counter", ["4"], [], "counter-4"),
        ("counter", ["1", "2"], [], "counter-1-2"),
        ("kiosk", ["k1"], [], "kiosk-k1"),
        ("display", ["hall-1"], ["hall"], "display-hall-1"),
    ],
)
def test_a_devices_acl_allows_exactly_the_topics_of_its_own_ids(role, ids, zones, device):
    """Every ACL pattern covers topics of the tree only, of the device's own ids and zones."""
    rules = T.acl(role, ids, zones, device=device)
    own = set(ids) | set(zones) | {device}
    for access, pattern in rules:
        route = T.parse(pattern.removesuffix("/#"))
        assert route.known, pattern
        assert route.id is None or route.id in own, pattern
        assert (access == "write") == route.from_device, pattern  # devices write requests, read the server's
    writes = [p for a, p in rules if a == "write"]
    assert T.device_availability(device) in writes
    assert not any(_matches(p, T.counter_command("99")) for p in writes)
    assert not any(_matches(p, T.zone_call("hall")) for p in writes)


def test_the_servers_acl_reads_every_request_and_writes_every_answer():
    rules = T.acl("server")
    reads = [p for a, p in rules if a == "read"]
    writes = [p for a, p in rules if a == "write"]
    for topic, _kind, _i, _s in DOCUMENTED:
        route = T.parse(topic)
        if route.kind in REPLICA:
            continue
        if route.from_device:
            assert any(_matches(p, topic) for p in reads), topic
        else:
            assert any(_matches(p, topic) for p in writes), topic
    # A typo a device could make below its own namespace still reaches the server, which
    # answers it with unknown_topic (the broker refuses a device that publishes it anyway).
    assert any(_matches(p, "numerek/counter/4/bogus") for p in reads)
    assert not any(_matches(p, T.counter_command("4")) for p in writes)


def test_the_replicators_acl_is_its_branchs_batches_re_sends_and_the_devices_availability():
    """What server/replicate.py publishes and subscribes to, for its own branch only; the
    pushed configuration is the server's (it applies it and answers)."""
    assert sorted(T.acl("replicator", ["wola"])) == sorted(
        [
            ("write", T.replica_events("wola")),
            ("read", T.replica_resend("wola")),
            ("read", T.filter(K.DEVICE_AVAILABILITY)),
        ]
    )
    server = T.acl("server")
    assert not any(_matches(p, T.replica_events("wola")) for a, p in server if a == "write")
    assert ("read", T.filter(K.REPLICA_CONFIG)) in server
    assert ("write", T.filter(K.REPLICA_CONFIG_RESULT)) in server


def test_a_branchs_account_at_the_centre_carries_exactly_what_its_bridge_carries():
    rules = T.acl("bridge", ["wola"])
    carried = [("write" if d == "out" else "read", f"numerek/{t}") for d, t in T.bridge_topics("wola")]
    assert sorted(rules) == sorted(carried)


def test_an_unknown_role_has_no_acl():
    with pytest.raises(ValueError, match="unknown role"):
        T.acl("printer")


@pytest.mark.parametrize(("payload", "value"), [(b"online", Availability.ONLINE), (b"offline", "offline"), (b"", None)])
def test_availability_is_online_offline_or_cleared(payload, value):
    assert parse_availability(payload) == value


@pytest.mark.parametrize("payload", [b"garbage", b"Online", b"online\n", b" offline", b"1", b"\xff\xfe"])
def test_any_other_availability_payload_is_refused(payload):
    with pytest.raises(ValueError, match="'online' or 'offline'"):
        parse_availability(payload)


# Topic building anywhere but protocol/topics.py: an f-string or literal starting with a base
# and a level of the tree, or a topic extended by an f-string (``f"{topics.x(i)}/{sub}"``).
_SPELLED = re.compile(
    r"""[fr]?["'](?:\{[^}"']*\}|numerek)/(?:server|device|services|counter|zone|kiosk)\b"""
    r"""|[fr]?["']\{[^}"']*(?:topic|Topic)[^}"']*\}/"""
)
PRODUCT_CODE = ("protocol", "server", "kiosk", "counter", "display", "hardware", "bench")


def _spelled_topics() -> list[str]:
    found = []
    for package in PRODUCT_CODE:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "protocol" / "topics.py":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if _SPELLED.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_no_module_but_protocol_topics_spells_a_topic():
    assert _spelled_topics() == []


@pytest.mark.parametrize(
    "line",
    [
        'client.publish(f"numerek/counter/{cid}/command", data)',
        'client.publish("numerek/kiosk/demo-sim/request", data)',
        '("write", f"{t.base}/server/#")',
        'topic = f"{BASE}/zone/hall/call"',
        'self.response_topic = f"{self.topics.kiosk_response(kid)}/{session}"',
    ],
)
def test_the_topic_spelling_check_would_catch_the_old_ways(line):
    assert _SPELLED.search(line)
