"""The one topic tree. Every topic Numerek uses is built, parsed and access-checked here.

All topics live under a base (``numerek`` unless the site config says otherwise, so that
several offices can share one broker). See docs/protocol.md for direction, QoS and retain.

Why one table (:data:`SHAPES`): the builders (``Topics.counter_command("4")``), the parser
(``Topics.parse(topic) -> Route``, which the server routes by) and the broker's ACL
(:meth:`Topics.acl`, which ``numerek-provision`` writes) are three views of the same tree.
Derived from one definition they cannot disagree: a topic the ACL lets a device publish is
one the server parses, and a topic the server parses is one some device may publish.
``tests/test_topics.py`` checks that no other module spells a topic itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

ONLINE = "online"
OFFLINE = "offline"

# Identifiers that appear inside topics: no MQTT wildcards or separators, short.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
BASE_PATTERN = r"^[a-z0-9_-]{1,32}$"
"""A topic base (``[mqtt] topic_base``): lower-case, short, one level."""

_ID = re.compile(ID_PATTERN)
_ID_SLOT = "<id>"


class RouteKind(StrEnum):
    """What a topic is. The value is the name used in logs and docs."""

    COUNTER_COMMAND = "counter_command"
    COUNTER_REPLY = "counter_reply"
    COUNTER_STATE = "counter_state"
    KIOSK_REQUEST = "kiosk_request"
    KIOSK_RESPONSE = "kiosk_response"
    KIOSK_FAULT = "kiosk_fault"
    DEVICE_AVAILABILITY = "device_availability"
    SERVER_AVAILABILITY = "server_availability"
    SERVICES = "services"
    SERVER_ERRORS = "server_errors"
    ZONE_CALL = "zone_call"
    ZONE_BOARD = "zone_board"
    REPLICA_EVENTS = "replica_events"
    REPLICA_RESEND = "replica_resend"
    REPLICA_CONFIG = "replica_config"
    REPLICA_CONFIG_RESULT = "replica_config_result"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Shape:
    """One kind of topic: its levels below the base, ``<id>`` where an identifier goes.

    ``tree``: topics below it belong to it too (a counter's ``reply/<anything>``, a kiosk's
    ``response/<session>``: the MQTT 5 response topics a device may ask for).
    """

    kind: RouteKind
    levels: tuple[str, ...]
    tree: bool = False
    from_server: bool = True
    """Published by the server (a device reads it); False: published by a device."""


SHAPES: tuple[Shape, ...] = (
    Shape(RouteKind.SERVER_AVAILABILITY, ("server", "availability")),
    Shape(RouteKind.SERVER_ERRORS, ("server", "errors")),
    Shape(RouteKind.SERVICES, ("services",)),
    Shape(RouteKind.DEVICE_AVAILABILITY, ("device", _ID_SLOT, "availability"), from_server=False),
    Shape(RouteKind.COUNTER_COMMAND, ("counter", _ID_SLOT, "command"), from_server=False),
    Shape(RouteKind.COUNTER_REPLY, ("counter", _ID_SLOT, "reply"), tree=True),
    Shape(RouteKind.COUNTER_STATE, ("counter", _ID_SLOT, "state")),
    Shape(RouteKind.ZONE_CALL, ("zone", _ID_SLOT, "call")),
    Shape(RouteKind.ZONE_BOARD, ("zone", _ID_SLOT, "board")),
    Shape(RouteKind.KIOSK_REQUEST, ("kiosk", _ID_SLOT, "request"), from_server=False),
    Shape(RouteKind.KIOSK_RESPONSE, ("kiosk", _ID_SLOT, "response"), tree=True),
    Shape(RouteKind.KIOSK_FAULT, ("kiosk", _ID_SLOT, "fault"), from_server=False),
    # Multi-branch replication (docs/multi-branch.md): a branch's event log towards the centre
    # and the centre's re-send requests back. Neither is for the branch server's worker, which
    # sees them through its wildcard and ignores them like its own output (from_server).
    Shape(RouteKind.REPLICA_EVENTS, ("replica", _ID_SLOT, "events")),
    Shape(RouteKind.REPLICA_RESEND, ("replica", _ID_SLOT, "resend")),
    # A configuration the centre pushes to a branch (retained, QoS 1): for the branch
    # server's worker, which validates it as its own; and its answer back to the centre.
    Shape(RouteKind.REPLICA_CONFIG, ("replica", _ID_SLOT, "config"), from_server=False),
    Shape(RouteKind.REPLICA_CONFIG_RESULT, ("replica", _ID_SLOT, "config-result")),
)
SHAPE = {s.kind: s for s in SHAPES}

# A request's kind -> the kind of its answer (where a device may ask for an MQTT 5 response topic).
REPLY_KIND = {RouteKind.COUNTER_COMMAND: RouteKind.COUNTER_REPLY, RouteKind.KIOSK_REQUEST: RouteKind.KIOSK_RESPONSE}


@dataclass(frozen=True)
class Route:
    """A parsed topic: its kind, the id in it (counter, kiosk, device id or zone) and, for a
    reply or response topic, the levels below it (``sub``, e.g. the kiosk's session)."""

    kind: RouteKind
    topic: str
    id: str | None = None
    sub: str | None = None

    @property
    def known(self) -> bool:
        return self.kind is not RouteKind.UNKNOWN

    @property
    def from_server(self) -> bool:
        """Something the server publishes (a server subscribed to the tree sees it again)."""
        return self.known and SHAPE[self.kind].from_server

    @property
    def from_device(self) -> bool:
        """A device's message to the server: a request, a fault report, an availability."""
        return self.known and not SHAPE[self.kind].from_server


ROLES = ("server", "counter", "kiosk", "display", "monitor", "replicator", "bridge", "central")
"""Who may hold a broker account; :meth:`Topics.acl` says what each may do."""


def device_name(role: str, *ids: str) -> str:
    """A device's username, MQTT client id and availability id: ``counter-4``, ``kiosk-k1``,
    ``display-hall-1``. A counter Pi driving two counters is ``counter-1-2``."""
    return f"{role}-{'-'.join(ids)}"


@dataclass(frozen=True)
class Topics:
    base: str = "numerek"

    def _build(self, kind: RouteKind, ident: str = "", sub: str | None = None) -> str:
        levels = [ident if level == _ID_SLOT else level for level in SHAPE[kind].levels]
        if sub is not None:
            levels.append(sub)
        return "/".join([self.base, *levels])

    def filter(self, kind: RouteKind, ident: str = "+") -> str:
        """The subscription filter (and ACL pattern) covering ``kind``: ``+`` for any id, and
        ``/#`` below reply and response topics so the MQTT 5 response topics are included."""
        topic = self._build(kind, ident)
        return topic + "/#" if SHAPE[kind].tree else topic

    def _siblings(self, kind: RouteKind) -> str:
        """Every topic beside ``kind`` for any id: ``counter/+/command`` -> ``counter/+/+``."""
        levels = ["+" if level == _ID_SLOT else level for level in SHAPE[kind].levels[:-1]]
        return "/".join([self.base, *levels, "+"])

    # --- availability (retained, set by each client's last will) -------------------
    @property
    def server_availability(self) -> str:
        return self._build(RouteKind.SERVER_AVAILABILITY)

    def device_availability(self, device_id: str) -> str:
        return self._build(RouteKind.DEVICE_AVAILABILITY, device_id)

    # --- server-wide state ----------------------------------------------------------
    @property
    def services(self) -> str:
        """Retained list of services with queue figures (kiosks, displays)."""
        return self._build(RouteKind.SERVICES)

    @property
    def errors(self) -> str:
        """Errors for messages whose sender cannot be told otherwise."""
        return self._build(RouteKind.SERVER_ERRORS)

    # --- counters -------------------------------------------------------------------
    def counter_command(self, counter_id: str) -> str:
        return self._build(RouteKind.COUNTER_COMMAND, counter_id)

    def counter_reply(self, counter_id: str, sub: str | None = None) -> str:
        """The default reply topic; with ``sub``, an MQTT 5 response topic below it."""
        return self._build(RouteKind.COUNTER_REPLY, counter_id, sub)

    def counter_state(self, counter_id: str) -> str:
        return self._build(RouteKind.COUNTER_STATE, counter_id)

    @property
    def counter_command_wildcard(self) -> str:
        return self.filter(RouteKind.COUNTER_COMMAND)

    # --- zones (hall displays) ------------------------------------------------------
    def zone_call(self, zone: str) -> str:
        """Live call events; never retained, so a reconnecting display sees no old call."""
        return self._build(RouteKind.ZONE_CALL, zone)

    def zone_board(self, zone: str) -> str:
        """Retained board: the last calls and waiting counts of the zone."""
        return self._build(RouteKind.ZONE_BOARD, zone)

    # --- kiosks ---------------------------------------------------------------------
    def kiosk_request(self, kiosk_id: str) -> str:
        return self._build(RouteKind.KIOSK_REQUEST, kiosk_id)

    def kiosk_response(self, kiosk_id: str, sub: str | None = None) -> str:
        """Default response topic when a request carries no MQTT 5 response topic; with
        ``sub`` (e.g. a kiosk's session), a response topic below it for a kiosk to ask for."""
        return self._build(RouteKind.KIOSK_RESPONSE, kiosk_id, sub)

    def kiosk_fault(self, kiosk_id: str) -> str:
        return self._build(RouteKind.KIOSK_FAULT, kiosk_id)

    @property
    def kiosk_request_wildcard(self) -> str:
        return self.filter(RouteKind.KIOSK_REQUEST)

    @property
    def kiosk_fault_wildcard(self) -> str:
        return self.filter(RouteKind.KIOSK_FAULT)

    # --- multi-branch replication (central/, server/replicate.py) ---------------------
    def replica_events(self, branch: str) -> str:
        """A branch's event batches, QoS 1, carried to the centre by the Mosquitto bridge."""
        return self._build(RouteKind.REPLICA_EVENTS, branch)

    def replica_resend(self, branch: str) -> str:
        """The centre's "send again from event N" to one branch (gap detection)."""
        return self._build(RouteKind.REPLICA_RESEND, branch)

    def replica_config(self, branch: str) -> str:
        """A configuration the centre pushes to one branch (retained, QoS 1: a branch offline
        gets it when its bridge is back)."""
        return self._build(RouteKind.REPLICA_CONFIG, branch)

    def replica_config_result(self, branch: str) -> str:
        """The branch server's answer to a pushed configuration: applied, or refused and why."""
        return self._build(RouteKind.REPLICA_CONFIG_RESULT, branch)

    def bridge_topics(self, branch: str) -> list[tuple[str, str]]:
        """(direction, topic below the base) pairs a branch broker's bridge carries: the
        events and configuration answers out to the centre, the re-send requests and pushed
        configurations in (mosquitto.conf ``topic`` lines)."""
        prefix = self.base + "/"
        return [
            ("out", self.replica_events(branch).removeprefix(prefix)),
            ("in", self.replica_resend(branch).removeprefix(prefix)),
            ("in", self.replica_config(branch).removeprefix(prefix)),
            ("out", self.replica_config_result(branch).removeprefix(prefix)),
        ]

    @property
    def everything(self) -> str:
        return f"{self.base}/#"

    def split(self, topic: str) -> list[str]:
        """Topic levels below the base, or [] for a topic outside the tree (prefer :meth:`parse`)."""
        prefix = self.base + "/"
        if not topic.startswith(prefix):
            return []
        return topic[len(prefix) :].split("/")

    # --- parsing --------------------------------------------------------------------
    @functools.lru_cache(maxsize=4096)  # noqa: B019  # Topics is frozen and lives as long as the program
    def parse(self, topic: str) -> Route:
        """What ``topic`` is: its kind and the id in it, or ``unknown``.

        Unknown are: topics outside the base, a level that differs from the tree's (a typo:
        ``kiosk/k1/reqest``), an id that is not an identifier (empty, a space, a wildcard,
        over 32 characters), extra levels below a topic that has none (``counter/1/command/x``)
        and empty or wildcard levels below a reply or response topic.
        """
        unknown = Route(RouteKind.UNKNOWN, topic)
        levels = self.split(topic)
        if not levels:
            return unknown
        for shape in SHAPES:
            n = len(shape.levels)
            if len(levels) < n or (len(levels) > n and not shape.tree):
                continue
            ident: str | None = None
            for want, got in zip(shape.levels, levels, strict=False):
                if want == _ID_SLOT:
                    if not _ID.match(got):
                        break
                    ident = got
                elif want != got:
                    break
            else:
                below = levels[n:]
                if below and not all(level and "+" not in level and "#" not in level for level in below):
                    return unknown
                return Route(shape.kind, topic, ident, "/".join(below) if below else None)
        return unknown

    def reply_topic(self, request: Route, requested: str | None) -> str:
        """Where the answer to a request goes: the MQTT 5 response topic it asked for, only
        if that lies at or below the device's own reply topic; else that default.

        Why the restriction: the server may publish anywhere in the tree, so an arbitrary
        response topic would let a device make the server publish a forged call onto a hall
        display's topic, which the broker's ACL cannot stop. Anything but a counter command
        or ticket request is answered on :attr:`errors`.
        """
        kind = REPLY_KIND.get(request.kind)
        if kind is None or request.id is None:
            return self.errors
        if requested:
            asked = self.parse(requested)
            if asked.kind is kind and asked.id == request.id:
                return requested
        return self._build(kind, request.id)

    # --- the broker's ACL -------------------------------------------------------------
    def acl(
        self, role: str, ids: Sequence[str] = (), zones: Sequence[str] = (), device: str | None = None
    ) -> list[tuple[str, str]]:
        """(access, topic filter) pairs for an account of ``role``: exactly what it uses.

        ``ids`` are the counter ids a counter unit commands or a kiosk's id; ``zones`` the
        zones a display shows; ``device`` the account's availability id (default
        :func:`device_name`). Anything not listed is refused by Mosquitto, ``$SYS`` and
        other bases included. ``tests/test_provision_broker.py`` checks on a real Mosquitto
        that each allowed topic works and the neighbours do not.
        """
        k = RouteKind
        if role == "server":
            return [
                ("write", self.server_availability),  # its availability (and last will)
                ("write", self.errors),
                ("write", self.services),
                # It reads every counter/+/+ and kiosk/+/+ topic, not only commands and
                # requests, so that a message on a topic it does not serve gets an
                # "unknown_topic" error instead of silence.
                ("read", self._siblings(k.COUNTER_COMMAND)),
                ("write", self.filter(k.COUNTER_STATE)),
                # A counter's reply, or the MQTT 5 response topic a command asked for, which
                # the server accepts only below counter/<id>/reply/ (see reply_topic).
                ("write", self.filter(k.COUNTER_REPLY)),
                ("write", self.filter(k.ZONE_CALL)),
                ("write", self.filter(k.ZONE_BOARD)),
                ("read", self._siblings(k.KIOSK_REQUEST)),
                ("write", self.filter(k.KIOSK_RESPONSE)),
                ("read", self.filter(k.DEVICE_AVAILABILITY)),
                # The centre's pushed configuration (the bridge brings only its own branch's) and its answer.
                ("read", self.filter(k.REPLICA_CONFIG)),
                ("write", self.filter(k.REPLICA_CONFIG_RESULT)),
            ]
        if role == "replicator":
            # numerek-replicate on its branch's own broker (server/replicate.py): its batches
            # (events, heartbeats, devices offline and the booking offer all ride in them),
            # the centre's re-send requests, and the devices' availability it reports. Not
            # the pushed configuration: the server applies and answers that.
            (branch,) = ids
            return [
                ("write", self.replica_events(branch)),
                ("read", self.replica_resend(branch)),
                ("read", self.filter(k.DEVICE_AVAILABILITY)),
            ]
        if role == "bridge":
            # A branch's account on the central broker, which its broker's bridge signs in
            # with: exactly the topics numerek-replicate bridge-config carries, its own only.
            (branch,) = ids
            return [
                ("write", self.replica_events(branch)),
                ("read", self.replica_resend(branch)),
                ("read", self.replica_config(branch)),
                ("write", self.replica_config_result(branch)),
            ]
        if role == "central":
            return [
                ("read", self.filter(k.REPLICA_EVENTS)),
                ("write", self.filter(k.REPLICA_RESEND)),
                ("write", self.filter(k.REPLICA_CONFIG)),
                ("read", self.filter(k.REPLICA_CONFIG_RESULT)),
            ]
        if role == "monitor":
            # Watching the traffic is how problems are diagnosed on site; doing so with the
            # server's account would log the server out (the client id is the account name).
            return [("read", self.everything)]
        own = [
            ("write", self.device_availability(device or device_name(role, *ids))),  # "online", and the last will
            ("read", self.server_availability),
        ]
        if role == "counter":
            rules = []
            for cid in ids:
                rules += [
                    ("write", self.counter_command(cid)),
                    ("read", self.counter_state(cid)),
                    ("read", self.filter(k.COUNTER_REPLY, cid)),  # the reply topic and response topics below it
                ]
            return rules + own
        if role == "kiosk":
            (kid,) = ids
            return [
                ("write", self.kiosk_request(kid)),
                ("write", self.kiosk_fault(kid)),
                ("read", self.filter(k.KIOSK_RESPONSE, kid)),  # the default response topic and its own below it
                ("read", self.services),
            ] + own
        if role == "display":
            rules = []
            for zone in zones:
                rules += [("read", self.zone_call(zone)), ("read", self.zone_board(zone))]
            return rules + [("read", self.services)] + own
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")

    def retained_by(self, role: str, ids: Sequence[str] = (), device: str | None = None) -> list[str]:
        """The retained messages a device publishes itself, which outlive it on the broker.

        Its availability (``online``, or the ``offline`` of its last will) and a kiosk's
        printer fault. A counter's ``state`` is not among them: the server publishes it for
        the counter, which stays in the office's config whichever Pi drives it.
        """
        if role not in ("counter", "kiosk", "display"):
            return []
        out = [self.device_availability(device or device_name(role, *ids))]
        if role == "kiosk":
            out.append(self.kiosk_fault(ids[0]))
        return out


class Availability(StrEnum):
    ONLINE = ONLINE
    OFFLINE = OFFLINE


def parse_availability(payload: bytes | str) -> Availability | None:
    """An availability payload: ``online`` or ``offline``; ``None`` for an empty one (a
    cleared retained message: the device was revoked). Anything else raises ValueError, so
    ``garbage`` published by a broken client is refused instead of stored and listed."""
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    except UnicodeDecodeError as exc:
        raise ValueError("availability must be 'online' or 'offline' (not UTF-8)") from exc
    if text == "":
        return None
    try:
        return Availability(text)
    except ValueError:
        raise ValueError(f"availability must be 'online' or 'offline', not {text[:40]!r}") from None
