"""Broker accounts: who they are, their passwords, and the registry that remembers them.

The registry (``devices.json``, mode 0600: it holds password hashes) is the source of truth;
the files Mosquitto reads are generated from it (:mod:`server.provision.broker`), so the two
can never drift apart. Passwords themselves are stored nowhere but in each device's own
config file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.topics import ID_PATTERN

ROLES = ("counter", "kiosk", "display", "monitor", "replicator")
"""Device roles, plus ``monitor``: a read-only account for a technician's ``mosquitto_sub``,
and ``replicator``: numerek-replicate's own account on a branch's broker (docs/multi-branch.md)."""
SERVER_USER = "server"
PROVISION_USER = "provision"
"""numerek-provision's own account, used only to clear a revoked device's retained messages."""
PBKDF2_ITERATIONS = 1000
"""Passwords are 144-bit random tokens, so the iteration count is not what protects them;
1000 keeps a Pi's broker quick when twenty devices reconnect at once after a power cut."""
MAX_COUNTERS = 4
"""Counters one unit may drive (counter/config.py: buttons, LEDs and LCDs of four fill a Pi's header)."""

_ID = re.compile(ID_PATTERN)


class ProvisionError(Exception):
    """A refusal with a message for the person at the terminal; nothing was changed."""


def check_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise ProvisionError(f"{what} {value!r} is not valid: use letters, digits, '-' or '_' (at most 32)")
    return value


# --------------------------------------------------------------------------- passwords


def hash_password(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """The ``$7$`` (PBKDF2-SHA512) format Mosquitto 2 reads, as ``mosquitto_passwd`` writes it."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, dklen=64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, hashed: str) -> bool:
    """True if ``password`` matches a ``$7$`` hash (used to verify what we wrote)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    salt = base64.b64decode(parts[3])
    return secrets.compare_digest(hash_password(password, salt, int(parts[2])), hashed)


def new_password() -> str:
    return secrets.token_urlsafe(18)


# --------------------------------------------------------------------------- registry


@dataclass
class Account:
    """One broker account: a device, or the server itself."""

    username: str
    role: str  # "server", "counter", "kiosk", "display", "monitor", "replicator" or "provision"
    ids: list[str] = field(default_factory=list)  # ids inside topics: ["4"] for counter-4, ["1", "2"] for counter-1-2
    zones: list[str] = field(default_factory=list)  # displays: the zone shown
    password_hash: str = ""
    created: str = ""
    clears: list[str] = field(default_factory=list)  # role "provision": the retained topics it may clear

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "role": self.role,
            "ids": self.ids,
            "zones": self.zones,
            "password_hash": self.password_hash,
            "created": self.created,
        }
        if self.clears:
            out["clears"] = self.clears
        return out


@dataclass
class Broker:
    """How devices reach the broker; written into every device config."""

    host: str = "numerek.local"
    port: int = 1883
    topic_base: str = "numerek"
    tls_ca: str | None = None  # path of the CA certificate *on the device*; TLS on when set
    public_url: str | None = None  # how phones reach the server (kiosks' QR codes); default http://<host>:8080

    def phones_url(self) -> str:
        """What a kiosk prints in its QR code: the server, as residents' phones reach it. The
        server and the broker share a Pi, so by default the broker's host on the web port."""
        return self.public_url or f"http://{self.host}:8080"


@dataclass
class Registry:
    path: Path
    broker: Broker = field(default_factory=Broker)
    accounts: dict[str, Account] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Registry:
        if not path.exists():
            return cls(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            broker = Broker(**raw.get("broker", {}))
            accounts = {name: Account(username=name, **a) for name, a in raw.get("accounts", {}).items()}
        except (OSError, ValueError, TypeError) as exc:
            raise ProvisionError(f"cannot read the device registry {path}: {exc}") from exc
        return cls(path, broker, accounts)

    def to_json(self) -> str:
        data = {
            "version": 1,
            "broker": self.broker.__dict__,
            "accounts": {name: a.to_json() for name, a in sorted(self.accounts.items())},
        }
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def render_passwd(registry: Registry) -> str:
    """Mosquitto's password file: one ``name:$7$...`` line per account."""
    return "".join(f"{name}:{a.password_hash}\n" for name, a in sorted(registry.accounts.items()))
