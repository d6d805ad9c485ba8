"""The one topic tree. Every topic Numerek uses is built here and nowhere else.

All topics live under a base (``numerek`` unless the site config says otherwise, so that
several offices can share one broker). See docs/protocol.md for direction, QoS and retain.
"""

from __future__ import annotations

from dataclasses import dataclass

ONLINE = "online"
OFFLINE = "offline"

# Identifiers that appear inside topics: no MQTT wildcards or separators, short.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"


@dataclass(frozen=True)
class Topics:
    base: str = "numerek"

    # --- availability (retained, set by each client's last will) -------------------
    @property
    def server_availability(self) -> str:
        return f"{self.base}/server/availability"

    def device_availability(self, device_id: str) -> str:
        return f"{self.base}/device/{device_id}/availability"

    # --- server-wide state ----------------------------------------------------------
    @property
    def services(self) -> str:
        """Retained list of services with queue figures (kiosks, displays)."""
        return f"{self.base}/services"

    @property
    def errors(self) -> str:
        """Errors for messages whose sender cannot be told otherwise."""
        return f"{self.base}/server/errors"

    # --- counters -------------------------------------------------------------------
    def counter_command(self, counter_id: str) -> str:
        return f"{self.base}/counter/{counter_id}/command"

    def counter_reply(self, counter_id: str) -> str:
        return f"{self.base}/counter/{counter_id}/reply"

    def counter_state(self, counter_id: str) -> str:
        return f"{self.base}/counter/{counter_id}/state"

    @property
    def counter_command_wildcard(self) -> str:
        return f"{self.base}/counter/+/command"

    # --- zones (hall displays) ------------------------------------------------------
    def zone_call(self, zone: str) -> str:
        """Live call events; never retained, so a reconnecting display sees no old call."""
        return f"{self.base}/zone/{zone}/call"

    def zone_board(self, zone: str) -> str:
        """Retained board: the last calls and waiting counts of the zone."""
        return f"{self.base}/zone/{zone}/board"

    # --- kiosks ---------------------------------------------------------------------
    def kiosk_request(self, kiosk_id: str) -> str:
        return f"{self.base}/kiosk/{kiosk_id}/request"

    def kiosk_response(self, kiosk_id: str) -> str:
        """Default response topic when a request carries no MQTT 5 response topic."""
        return f"{self.base}/kiosk/{kiosk_id}/response"

    def kiosk_fault(self, kiosk_id: str) -> str:
        return f"{self.base}/kiosk/{kiosk_id}/fault"

    @property
    def kiosk_request_wildcard(self) -> str:
        return f"{self.base}/kiosk/+/request"

    @property
    def kiosk_fault_wildcard(self) -> str:
        return f"{self.base}/kiosk/+/fault"

    @property
    def everything(self) -> str:
        return f"{self.base}/#"

    def split(self, topic: str) -> list[str]:
        """Topic levels below the base, or [] for a topic outside the tree."""
        prefix = self.base + "/"
        if not topic.startswith(prefix):
            return []
        return topic[len(prefix) :].split("/")
