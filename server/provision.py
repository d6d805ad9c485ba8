"""``numerek-provision``: give a device (or the server) its own broker account, ACL and config file.

Why a tool and not a how-to: the broker is the office's only access control between devices.
Every counter, kiosk and display gets its own username and random password, and an ACL that
lets it do exactly its job (a counter commands only as itself, a display only reads, a kiosk
only asks for tickets). Writing those by hand for twenty devices invites the one typo that
lets counter 4 call tickets for counter 1. The tool keeps a small registry next to the
broker's files and regenerates the password file and the ACL from it on every change, so
the two can never drift apart, then asks Mosquitto to reload (SIGHUP): Mosquitto then drops
a revoked device's open connection and refuses it from then on.

Files (defaults, all changeable with options):

- ``/etc/mosquitto/numerek/devices.json`` the registry (mode 0600: it holds password hashes)
- ``/etc/mosquitto/numerek/passwd`` Mosquitto password file (PBKDF2-SHA512, like mosquitto_passwd)
- ``/etc/mosquitto/numerek/acl`` Mosquitto ACL, one ``user`` block per account
- ``/etc/numerek/devices/<device>.toml`` the config file to copy onto the device

Roles: ``server`` (its account goes into the site config's ``[mqtt]``), ``counter``,
``kiosk``, ``display``, and ``monitor`` (read-only, for a technician's ``mosquitto_sub``).

A device's config file is finished by the office (printer, pins, screen), so the tool never
throws that work away: ``add --replace`` and ``reissue`` (the move to TLS) start from the
existing file and change only what provisioning owns. ``revoke`` also deletes what the
device left retained on the broker (its availability, a kiosk's fault), through a one-off
``provision`` account whose password exists only for that run.

ACL design: per-user ``user`` blocks rather than ``pattern ... %u`` rules, because a topic
carries the device's own id ("4") while its username is "counter-4", and a display's topics
depend on its zone, which no username pattern can express. The ACL file then reads as a
list of who may do what, which an office's IT person can audit.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import grp
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from protocol.topics import ID_PATTERN, Topics, device_name

ROLES = ("counter", "kiosk", "display", "monitor")
"""Device roles, plus ``monitor``: a read-only account for a technician's ``mosquitto_sub``."""
SERVER_USER = "server"
PROVISION_USER = "provision"
"""numerek-provision's own account, used only to clear a revoked device's retained messages."""
DEFAULT_BROKER_DIR = Path("/etc/mosquitto/numerek")
DEFAULT_CONFIG_DIR = Path("/etc/numerek/devices")
DEFAULT_SITE_CONFIG = Path("/etc/numerek/numerek.toml")
DEFAULT_RELOAD = "systemctl reload-or-restart mosquitto.service"
PBKDF2_ITERATIONS = 1000
"""Passwords are 144-bit random tokens, so the iteration count is not what protects them;
1000 keeps a Pi's broker quick when twenty devices reconnect at once after a power cut."""

_ID = re.compile(ID_PATTERN)


class ProvisionError(Exception):
    """A refusal with a message for the person at the terminal; nothing was changed."""


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
    role: str  # "server", "counter", "kiosk", "display", "monitor" or "provision"
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


# --------------------------------------------------------------------------- ACL


def acl_rules(account: Account, topics: Topics) -> list[tuple[str, str]]:
    """(access, topic filter) pairs for one account: exactly what its role uses, no more.

    Derived from the topic tree itself (:meth:`protocol.topics.Topics.acl`), so the ACL
    cannot drift from what the programs publish and subscribe to. Only numerek-provision's
    own one-off account is defined here.
    """
    if account.role == "provision":
        # numerek-provision itself, clearing what a revoked device left retained; its
        # password is made anew for each use and never stored.
        return [("write", topic) for topic in account.clears]
    try:
        return topics.acl(account.role, account.ids, account.zones, device=account.username)
    except ValueError as exc:
        raise ProvisionError(str(exc)) from exc


def retained_topics(account: Account, topics: Topics) -> list[str]:
    """The retained messages a device publishes itself, which outlive it on the broker."""
    return topics.retained_by(account.role, account.ids, device=account.username)


def render_acl(registry: Registry) -> str:
    topics = Topics(registry.broker.topic_base)
    lines = [
        "# Numerek broker ACL — generated by numerek-provision; edits here are overwritten.",
        "# One block per account; anything not listed is refused (anonymous clients are refused",
        "# by allow_anonymous false in numerek.conf).",
        "",
    ]
    for name, account in sorted(registry.accounts.items()):
        what = " ".join([account.role, *account.ids, *(f"zone {z}" for z in account.zones)])
        if account.role == "provision":
            what = "numerek-provision clearing retained messages of a revoked device"
        lines.append(f"# {what}, since {account.created}")
        lines.append(f"user {name}")
        lines += [f"topic {access} {topic}" for access, topic in acl_rules(account, topics)]
        lines.append("")
    return "\n".join(lines)


def render_passwd(registry: Registry) -> str:
    return "".join(f"{name}:{a.password_hash}\n" for name, a in sorted(registry.accounts.items()))


# --------------------------------------------------------------------------- TOML editing


def _toml_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")
_COMMENTED = re.compile(r"^\s*#\s*([A-Za-z0-9_-]+)\s*=")
_SIMPLE = re.compile(r'^\s*[A-Za-z0-9_-]+\s*=\s*(?:"[^"\\]*"|[^"\s#]+)(\s+#.*)$')
"""A one-line value with a trailing comment, which is kept when the value is replaced."""


def set_toml_keys(text: str, table: str, values: dict[str, str | int | bool | None], array: bool = False) -> str:
    """``text`` with ``[table]``'s keys set (``None`` removes a key), comments elsewhere kept.

    With ``array=True`` the keys of the first ``[[table]]`` are set instead. A line-based edit,
    not a TOML round trip, because these files are written and commented by people (the site
    config, the roles' examples) and a parser would drop every comment. The result is parsed
    again and checked, so an edit that went wrong is an error, never a broken file.
    """
    opener = "[[" if array else "["
    lines = text.splitlines()
    start = end = None
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if not m:
            continue
        if start is None and m.group(1) == opener and m.group(2) == table:
            start = i
        elif start is not None:
            end = i
            break
    if start is None:
        lines += ["", f"{opener}{table}{opener.replace('[', ']')}"]
        start, end = len(lines) - 1, len(lines)
    elif end is None:
        end = len(lines)
    pending = dict(values)
    body = []
    for line in lines[start + 1 : end]:
        m = _KEY.match(line)
        if m and m.group(1) in pending:
            value = pending.pop(m.group(1))
            if value is not None:
                comment = _SIMPLE.match(line)
                body.append(f"{m.group(1)} = {_toml_value(value)}{comment.group(1) if comment else ''}")
            continue
        body.append(line)
    for i, line in enumerate(body):  # a commented-out example ("# username = ...") becomes the real line
        m = _COMMENTED.match(line)
        if m and pending.get(m.group(1)) is not None:
            body[i] = f"{m.group(1)} = {_toml_value(pending.pop(m.group(1)))}"
    insert_at = len(body)
    while insert_at > 0 and (not body[insert_at - 1].strip() or body[insert_at - 1].lstrip().startswith("#")):
        insert_at -= 1  # after the table's last key, before the comments that introduce the next table
    body[insert_at:insert_at] = [f"{k} = {_toml_value(v)}" for k, v in pending.items() if v is not None]
    result = "\n".join(lines[: start + 1] + body + lines[end:]) + "\n"
    try:
        section: Any = tomllib.loads(result)
    except tomllib.TOMLDecodeError as exc:
        raise ProvisionError(f"could not set [{table}] keys in the TOML file: {exc}") from exc
    for part in table.split("."):
        section = section.get(part, {}) if isinstance(section, dict) else {}
    if array:
        section = section[0] if isinstance(section, list) and section else {}
    for key, value in values.items():
        if (section.get(key) if isinstance(section, dict) else None) != value:
            raise ProvisionError(f"could not set {key} in [{table}] of the TOML file (is it a plain table?)")
    return result


# --------------------------------------------------------------------------- device config files

MINIMAL = {
    "counter": '[broker]\n\n[unit]\n\n[[counters]]\nid = "1"\n',
    "kiosk": '[kiosk]\nid = "k1"\n\n[mqtt]\n',
    "display": '[display]\nid = "hall-1"\n\n[mqtt]\n',
    "monitor": "# For mosquitto_sub -h HOST -p PORT -u USERNAME -P PASSWORD -t 'numerek/#' -v\n[mqtt]\n",
}
"""Used when the role's example is not installed: enough to carry identity and credentials."""


def _example(role: str) -> str:
    """The role's commented example config (``<role>/examples/<role>.toml``), found without importing it."""
    spec = importlib.util.find_spec(role)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "examples" / f"{role}.toml"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return MINIMAL[role]


INSTALLED_BIN = "/opt/numerek/venv/bin"
"""Where systemd/install.sh puts the programs (``$venv/bin``); only numerek-provision is on PATH."""
MAX_COUNTERS = 4
"""Counters one unit may drive (counter/config.py: buttons, LEDs and LCDs of four fill a Pi's header)."""

_PROVISION_HEAD = re.compile(r"^# Numerek .*from numerek-provision")
_COUNTER_RULE = re.compile(r"^(# -{5,} counter )(\S+)(.*)$")
_COMMENTED_TOML = re.compile(r"^#\s?(\[\[?[A-Za-z0-9_.]+\]\]?(\s+#.*)?|[A-Za-z0-9_]+\s*=.*)$")


def check_command(role: str) -> str:
    """The config check to run on the device, as install.sh installs it.

    As the service user, because the installed file is root:numerek 0640 (an admin's own
    login cannot read it), and by full path, because install.sh puts only numerek-provision
    on PATH.
    """
    return f"sudo -u numerek {INSTALLED_BIN}/numerek-{role} --config /etc/numerek/{role}.toml --check"


def _strip_heading(text: str) -> str:
    """``text`` without the comment block an earlier numerek-provision run put on top."""
    lines = text.splitlines()
    if lines and _PROVISION_HEAD.match(lines[0]):
        end = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
        lines = lines[end:]
    return "\n".join(lines).lstrip("\n") + "\n"


def _counter_blocks(text: str, ids: list[str]) -> tuple[str, list[str]]:
    """The example's counter sections made this unit's: a ``[[counters]]`` block per id.

    The first block gets the first id, and its heading rule ("counter 1") and name hint
    follow. The example's commented second counter ("counter 2 (same Pi)", with pins of its
    own) becomes the real block of the second id. Returns the text and the ids that still
    have no block (the example has templates for two), for the heading to name.
    """
    text = set_toml_keys(text, "counters", {"id": ids[0]}, array=True)
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if _COUNTER_RULE.match(line)]
    if rules:
        first = rules[0]
        lines[first] = _COUNTER_RULE.sub(lambda m: f"{m.group(1)}{ids[0]}", lines[first])
        stop = rules[1] if len(rules) > 1 else len(lines)
        for i in range(first, stop):
            lines[i] = re.sub(r'^(# name = ")Stanowisko \S+(")', rf"\g<1>Stanowisko {ids[0]}\g<2>", lines[i])
    missing = ids[1:]
    if len(ids) > 1 and len(rules) > 1:
        second = rules[1]
        body = lines[second + 1 :]
        if any(_COMMENTED_TOML.match(line) for line in body):
            out = [
                f"{_COUNTER_RULE.match(lines[second]).group(1)}{ids[1]} (same Pi)",  # type: ignore[union-attr]
                "# Driven from this Pi too: pins of its own, its LCD at another I2C address",
                "# (solder A0 on the second backpack: 0x26).",
            ]
            started = False
            for line in body:
                m = _COMMENTED_TOML.match(line)
                if m:
                    started = True
                    line = m.group(1)
                    if re.match(r'^id\s*=\s*"[^"]*"', line):
                        line = f"id = {_toml_value(ids[1])}"
                    out.append(line)
                elif started:
                    out.append(line)
            candidate = "\n".join(lines[:second] + out) + "\n"
            try:
                counters = tomllib.loads(candidate).get("counters", [])
            except tomllib.TOMLDecodeError:
                counters = []
            if [c.get("id") for c in counters] == ids[:2]:
                lines, missing = candidate.splitlines(), ids[2:]
    return "\n".join(lines) + "\n", missing


def _counter_ids_in(text: str, account: Account) -> list[str]:
    """The ids of an existing counter config's blocks, refused if the account may not command one."""
    counters = tomllib.loads(text).get("counters", [])
    found = [str(c.get("id")) for c in counters if isinstance(c, dict)] if isinstance(counters, list) else []
    foreign = [cid for cid in found if cid not in account.ids]
    if foreign:
        raise ProvisionError(
            f"the existing config drives counter(s) {', '.join(foreign)}, which {account.username} may not command; "
            f"provision the unit for all of them ('add counter {' '.join(sorted(set(account.ids) | set(found)))}') "
            "or remove those blocks"
        )
    return found


EXAMPLE_PUBLIC_URL = "http://numerek.local:8080"
"""The kiosk example's placeholder: provisioning replaces it with the broker's host."""


def render_device_config(account: Account, broker: Broker, password: str, existing: str | None = None) -> str:
    """The device's own config file: identity and credentials set, everything else kept.

    Without ``existing`` it starts from the role's example, whose comments (pins, printer,
    screen options) guide whoever finishes the file. With ``existing`` (the device's config
    as the office finished it) only what provisioning owns is changed: the broker address,
    port, TLS CA, topic base, username and password, and the device's ids and zone. So a new
    password or a move to TLS never costs the office its printer, pins or screen settings.
    """
    role, ids = account.role, account.ids
    credentials = {
        "host": broker.host,
        "port": broker.port,
        "username": account.username,
        "password": password,
        "tls_ca": broker.tls_ca,
        "topic_base": broker.topic_base,
    }
    if existing is not None:
        try:
            tomllib.loads(existing)
        except tomllib.TOMLDecodeError as exc:
            raise ProvisionError(f"the existing config of {account.username} is not valid TOML: {exc}") from exc
        text = _strip_heading(existing)
    else:
        text = _example(role) if role != "monitor" else MINIMAL[role]
    missing: list[str] = []
    if role == "counter":
        # [broker] is the counter's old name of [mqtt]: an old file gets the new name.
        text = re.sub(r"(?m)^\[broker\]", "[mqtt]", text) if "mqtt" not in tomllib.loads(text) else text
        text = set_toml_keys(text, "mqtt", credentials)
        text = set_toml_keys(text, "unit", {"device": account.username})
        if existing is None:
            text, missing = _counter_blocks(text, ids)
        else:
            found = _counter_ids_in(text, account)
            missing = [cid for cid in ids if cid not in found]
    elif role == "kiosk":
        kiosk = {"id": ids[0]}
        kept = tomllib.loads(text).get("kiosk", {}).get("public_url") if existing is not None else None
        if kept is None or kept == EXAMPLE_PUBLIC_URL:  # the example's placeholder would print dead QR codes
            kiosk["public_url"] = broker.phones_url()
        text = set_toml_keys(text, "kiosk", kiosk)
        text = set_toml_keys(text, "mqtt", credentials)
    elif role == "display":
        text = set_toml_keys(text, "display", {"id": ids[0], "zone": account.zones[0]})
        text = set_toml_keys(text, "mqtt", credentials)
    else:
        text = set_toml_keys(text, "mqtt", credentials)
    # The example's own "check it with numerek-<role> --config <role>.toml --check" is for a
    # copy in the current directory; on the device the command is the installed one.
    text = re.sub(
        rf"(?m)^#(\s+)numerek-{role} --config \S+ --check\s*$", lambda m: f"#{m.group(1)}{check_command(role)}", text
    )
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = [f"# Numerek {role} {', '.join(ids)} ({account.username}), from numerek-provision, {now}."]
    if role == "monitor":
        head.append("# A read-only account for watching all Numerek traffic. Keep this file private.")
    else:
        head += [
            f"# Install on the device as /etc/numerek/{role}.toml, owner root:numerek, mode 0640, then check it:",
            f"#   {check_command(role)}",
            "# It holds this device's broker password: do not copy it to another device.",
        ]
    if missing:
        head.append(
            f"# This unit may also command counter(s) {', '.join(missing)}: add a [[counters]] block for each "
            "(pins and LCD address of its own)."
        )
    return "\n".join(head) + "\n\n" + text.lstrip("\n")


# --------------------------------------------------------------------------- writing files


def _owner_group() -> int | None:
    """Mosquitto drops to its own user: make its files group-readable by ``mosquitto``."""
    try:
        return grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        return None


def write_private(path: Path, text: str, mode: int = 0o600, gid: int | None = None, uid: int = 0) -> None:
    """Atomically replace ``path`` (readers never see half a file), with ``mode`` from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        if gid is not None and os.geteuid() == 0:
            os.fchown(fd, uid, gid)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(registry: Registry) -> None:
    """Registry first, then the files Mosquitto reads, each replaced atomically."""
    gid = _owner_group()
    base = registry.path.parent
    write_private(registry.path, registry.to_json(), 0o600)
    write_private(base / "passwd", render_passwd(registry), 0o640, gid)
    write_private(base / "acl", render_acl(registry), 0o640, gid)


# --------------------------------------------------------------------------- broker reload


def reload_broker(command: str | None, pid: int | None) -> str:
    """Ask Mosquitto to re-read the password file and ACL (SIGHUP); returns what was done."""
    if pid is not None:
        try:
            os.kill(pid, signal.SIGHUP)
        except OSError as exc:
            raise ProvisionError(f"files written, but could not signal the broker (pid {pid}): {exc}") from exc
        return f"sent SIGHUP to the broker (pid {pid})"
    if not command:
        return "broker not reloaded (--no-reload): run 'systemctl reload-or-restart mosquitto' to apply"
    try:
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProvisionError(f"files written, but '{command}' failed: {exc}") from exc
    if done.returncode != 0:
        raise ProvisionError(f"files written, but '{command}' failed: {done.stderr.strip() or done.returncode}")
    return f"broker reloaded ({command})"


# --------------------------------------------------------------------------- commands


def _check_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise ProvisionError(f"{what} {value!r} is not valid: use letters, digits, '-' or '_' (at most 32)")
    return value


def cmd_init(registry: Registry, args: argparse.Namespace) -> str:
    b = registry.broker
    if args.host:
        b.host = args.host
    if args.port:
        b.port = args.port
    if args.topic_base:
        if not re.fullmatch(r"[a-z0-9_-]{1,32}", args.topic_base):
            raise ProvisionError(f"topic base {args.topic_base!r} is not valid: lower-case letters, digits, '-', '_'")
        b.topic_base = args.topic_base
    if args.tls_ca is not None:
        b.tls_ca = args.tls_ca or None
    if args.public_url is not None:
        if args.public_url and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", args.public_url):
            raise ProvisionError(f"public URL {args.public_url!r} is not an http(s) address")
        b.public_url = args.public_url.rstrip("/") or None
    save(registry)
    tls = f", TLS with CA {b.tls_ca}" if b.tls_ca else ""
    return f"broker for devices: {b.host}:{b.port}, topics under {b.topic_base}/{tls}"


@dataclass
class Done:
    """What a command did, and what is left to do once the broker has reloaded its files."""

    message: str
    after_reload: Any = None  # Callable[[], tuple[bool, str]]: (succeeded, what happened)
    without_reload: str = ""  # a warning when the broker is not reloaded (after_reload then never runs)
    cleanup: bool = False  # remove the one-off provision account afterwards


def _existing_config(args: argparse.Namespace, out: Path) -> tuple[str | None, str]:
    """The device config to keep settings from: ``--from FILE``, else the earlier file for a ``--replace``."""
    source = Path(args.from_file) if getattr(args, "from_file", None) else (out if args.replace else None)
    if source is None or (source == out and not out.exists()):
        return None, ""
    try:
        return source.read_text(encoding="utf-8"), f"; its settings kept from {source}"
    except OSError as exc:
        raise ProvisionError(f"cannot read the device config {source}: {exc.strerror}") from exc


def cmd_add(registry: Registry, args: argparse.Namespace) -> str:
    role = args.role
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if role == "server":
        if args.ids:
            raise ProvisionError("'add server' takes no id")
        if getattr(args, "from_file", None):
            raise ProvisionError("--from is for device configs; the server's account goes into --site-config")
        account = Account(SERVER_USER, "server", created=now)
    else:
        if not args.ids:
            raise ProvisionError(
                f"'add {role}' needs the device id, e.g. 'add {role} {'4' if role == 'counter' else 'k1'}'"
            )
        if role != "counter" and len(args.ids) > 1:
            raise ProvisionError(f"one {role} per account: 'add {role} {args.ids[0]}'")
        if len(args.ids) > MAX_COUNTERS:
            raise ProvisionError(f"one counter unit drives at most {MAX_COUNTERS} counters")
        ids = [_check_id(i, f"{role} id") for i in args.ids]
        if len(set(ids)) != len(ids):
            raise ProvisionError(f"a counter id is repeated: {' '.join(ids)}")
        zones = []
        if role == "display":
            if not args.zone:
                raise ProvisionError("a display needs --zone: the zone (hall) whose calls it shows")
            zones = [_check_id(args.zone, "zone")]
        elif args.zone:
            raise ProvisionError("--zone is only for displays")
        account = Account(device_name(role, *ids), role, ids, zones, created=now)
        _check_id(account.username, "device name")
    if account.username in registry.accounts and not args.replace:
        raise ProvisionError(
            f"{account.username} already exists; use --replace to give it a new password "
            "(the old one stops working) or 'revoke' it first"
        )
    password = new_password()
    account.password_hash = hash_password(password)
    if role == "server":
        return _add_server(registry, account, password, Path(args.site_config))
    out = Path(args.config_dir) / f"{account.username}.toml"
    existing, kept = _existing_config(args, out)
    config = render_device_config(account, registry.broker, password, existing)
    write_private(out, config, 0o600)  # first: if the broker files cannot be written, nothing is enabled
    registry.accounts[account.username] = account
    save(registry)
    if role == "monitor":
        return f"{account.username}: read-only account written; its password is in {out}"
    return f"{account.username}: account and ACL written{kept}; copy {out} to the device as /etc/numerek/{role}.toml"


def _add_server(registry: Registry, account: Account, password: str, site_config: Path) -> str:
    """Write the server's account into the site config's ``[mqtt]`` (where server/config.py reads it)."""
    try:
        old = site_config.read_text(encoding="utf-8")
        st = site_config.stat()
    except OSError as exc:
        raise ProvisionError(f"cannot read the site config {site_config}: {exc.strerror}") from exc
    try:
        site_base = tomllib.loads(old).get("mqtt", {}).get("topic_base", "numerek")
    except tomllib.TOMLDecodeError as exc:
        raise ProvisionError(f"the site config {site_config} is not valid TOML: {exc}") from exc
    if site_base != registry.broker.topic_base:
        raise ProvisionError(
            f"the site config uses topic base {site_base!r} but the broker ACL uses "
            f"{registry.broker.topic_base!r}; run 'numerek-provision init --topic-base {site_base}' first"
        )
    new = set_toml_keys(old, "mqtt", {"username": SERVER_USER, "password": password})
    registry.accounts[account.username] = account
    save(registry)
    # Never world-readable once it holds a password; the numerek group (the server) keeps reading it.
    write_private(site_config, new, (st.st_mode & 0o770) or 0o640, st.st_gid, st.st_uid)
    return (
        f"server account '{SERVER_USER}' written into [mqtt] of {site_config}; "
        "a running server keeps the old password: sudo systemctl restart numerek-server"
    )


def _file_password(text: str, role: str) -> str | None:
    data = tomllib.loads(text)
    table = data.get("mqtt", data.get("broker", {}) if role == "counter" else {})
    value = table.get("password") if isinstance(table, dict) else None
    return value if isinstance(value, str) else None


def cmd_reissue(registry: Registry, args: argparse.Namespace) -> str:
    """Rewrite device config files for the broker settings of ``init`` (TLS, host, port), keeping the rest.

    This is the step that moves an office to TLS: every device kind (a display with its zone,
    a unit with several counters) gets its file with the new port and CA, and keeps its
    printer, pins, screen settings and, while the file still holds it, its password, so a
    device keeps working on the old listener until its new file is installed.
    """
    devices = [n for n, a in sorted(registry.accounts.items()) if a.role in ROLES]
    if args.all == bool(args.devices):
        raise ProvisionError("name the accounts to reissue (e.g. 'reissue counter-1 display-hall-1') or give --all")
    names = devices if args.all else args.devices
    for name in names:
        if name not in registry.accounts:
            raise ProvisionError(f"no account {name!r} (known: {', '.join(sorted(registry.accounts)) or 'none'})")
        if name not in devices:
            raise ProvisionError(
                f"{name} is not a device: the server's account lives in its site config and it reaches the "
                "broker on its own machine"
            )
    if not names:
        raise ProvisionError("no device accounts yet: nothing to reissue")
    config_dir = Path(args.config_dir)
    missing = [n for n in names if not (config_dir / f"{n}.toml").is_file()]
    if missing:
        first = missing[0]
        role = registry.accounts[first].role
        raise ProvisionError(
            f"no saved config for {', '.join(missing)} in {config_dir}, so its settings cannot be kept; fetch the "
            f"device's own file first, e.g. ssh admin@<device> sudo cat /etc/numerek/{role}.toml | "
            f"sudo sh -c 'umask 077; cat > {config_dir / first}.toml' (or 'add ... --replace --from FILE')"
        )
    results: list[tuple[Path, str]] = []
    lines = []
    b = registry.broker
    where = f"{b.host}:{b.port}" + (f" with TLS (CA {b.tls_ca} on the device)" if b.tls_ca else " without TLS")
    for name in names:
        account = registry.accounts[name]
        path = config_dir / f"{name}.toml"
        try:
            text = path.read_text(encoding="utf-8")
            password = _file_password(text, account.role)
        except OSError as exc:
            raise ProvisionError(f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ProvisionError(f"{path} is not valid TOML: {exc}") from exc
        if password is not None and check_password(password, account.password_hash):
            note = "password kept"
        else:
            password = new_password()
            account.password_hash = hash_password(password)
            note = "NEW password (the file's was not the account's): the device needs this file to log in"
        results.append((path, render_device_config(account, b, password, text)))
        lines.append(f"{name}: {path} now for {where}; settings and {note}")
    for path, text in results:
        write_private(path, text, 0o600)
    save(registry)
    return "\n".join(lines + ["copy each file to its device as /etc/numerek/<role>.toml and restart its unit"])


def _connect_and_clear(host: str, port: int, password: str, topics: list[str], wait: float) -> tuple[bool, str]:
    """Log in as the one-off ``provision`` account and delete ``topics``' retained messages.

    The password was made for this run, so a successful login also proves that Mosquitto
    has re-read its files: by then it has cut off the revoked device (and handled its last
    will), and nothing can put its "offline" back after the clear.
    """
    import time

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    deadline = time.monotonic() + wait
    last = "no answer"
    while True:
        state: dict[str, Any] = {"acks": {}}
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=PROVISION_USER, protocol=mqtt.MQTTv5)
        client.username_pw_set(PROVISION_USER, password)
        client.on_connect = lambda _c, _u, _f, rc, _p, s=state: s.update(connack=rc)
        client.on_publish = lambda _c, _u, mid, rc, _p, s=state: s["acks"].update({mid: rc})
        try:
            client.connect(host, port, keepalive=10)
            while "connack" not in state and time.monotonic() < deadline:
                client.loop(0.1)
        except OSError as exc:
            last = exc.strerror or str(exc)
        rc = state.get("connack")
        if rc is not None and not rc.is_failure:
            break
        if rc is not None:
            last = f"login refused ({rc})"
        client.disconnect()
        if time.monotonic() >= deadline:
            return False, f"broker at {host}:{port} not reachable: {last}"
        time.sleep(0.2)
    try:
        mids = {client.publish(t, b"", qos=1, retain=True).mid: t for t in topics}
        while len(state["acks"]) < len(mids) and time.monotonic() < deadline:
            client.loop(0.1)
    finally:
        client.disconnect()
    refused = [t for mid, t in mids.items() if mid not in state["acks"] or state["acks"][mid].is_failure]
    if refused:
        return False, f"the broker did not clear {', '.join(refused)}"
    return True, "cleared its retained " + ", ".join(topics)


def _plan_clear(registry: Registry, account: Account, args: argparse.Namespace) -> Done | None:
    """Give the ``provision`` account a new password and the right to clear ``account``'s retained topics.

    Only for as long as the clearing takes: main() removes the account again afterwards.
    Without a broker reload the account would never be live, so then nothing is planned.
    """
    topics = retained_topics(account, Topics(registry.broker.topic_base))
    if not topics:
        return None
    name = account.username
    later = (
        f"{name}'s retained availability not cleared (broker not reloaded): after reloading it run: "
        f"numerek-provision clear {name}"
    )
    if args.no_reload:
        return Done("", without_reload=later)
    password = new_password()
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    registry.accounts[PROVISION_USER] = Account(
        PROVISION_USER, "provision", password_hash=hash_password(password), created=now, clears=topics
    )
    host, port, wait = args.mqtt_host, args.mqtt_port, args.mqtt_wait

    def after() -> tuple[bool, str]:
        ok, what = _connect_and_clear(host, port, password, topics, wait)
        if ok:
            return True, f"{name}: {what} (screens no longer list it)"
        return False, (
            f"{name}'s retained availability is still on the broker ({what}): the server may list it as "
            f"online/offline; when the broker is reachable run: numerek-provision clear {name}"
        )

    return Done("", after, later, cleanup=True)


def cmd_revoke(registry: Registry, args: argparse.Namespace) -> Done:
    name = args.device
    if name not in registry.accounts or name == PROVISION_USER:
        known = ", ".join(sorted(n for n in registry.accounts if n != PROVISION_USER)) or "none"
        raise ProvisionError(f"no account {name!r} (known: {known})")
    account = registry.accounts.pop(name)
    plan = _plan_clear(registry, account, args)
    save(registry)
    leftover = Path(args.config_dir) / f"{name}.toml"
    leftover.unlink(missing_ok=True)
    message = f"{name}: revoked (password and ACL removed)"
    if plan is None:
        return Done(message)
    plan.message = message
    return plan


def cmd_clear(registry: Registry, args: argparse.Namespace) -> Done:
    """Clear what a device already revoked left retained (when the broker was away at ``revoke``)."""
    name = _check_id(args.device, "device name")
    if name in registry.accounts:
        raise ProvisionError(f"{name} still has an account: 'revoke {name}' (which also clears it)")
    role, _, rest = name.partition("-")
    if role not in ("counter", "kiosk", "display") or not rest:
        raise ProvisionError(f"{name!r} is not a device name such as counter-4, kiosk-k1 or display-hall-1")
    plan = _plan_clear(registry, Account(name, role, rest.split("-") if role == "counter" else [rest]), args)
    assert plan is not None  # every device role owns its availability
    save(registry)
    plan.message = f"{name}: clearing its retained messages"
    return plan


def cmd_list(registry: Registry, _args: argparse.Namespace) -> str:
    if not registry.accounts:
        return "no accounts yet; start with: numerek-provision add server"
    rows = [f"{'account':<24} {'role':<8} {'zones':<20} created"]
    for name, a in sorted(registry.accounts.items()):
        rows.append(f"{name:<24} {a.role:<8} {','.join(a.zones) or '-':<20} {a.created}")
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="numerek-provision",
        description="Create or revoke broker accounts for Numerek devices (run as root on the broker's machine).",
    )
    p.add_argument("--broker-dir", default=str(DEFAULT_BROKER_DIR), help="registry, passwd and acl (%(default)s)")
    p.add_argument("--config-dir", default=str(DEFAULT_CONFIG_DIR), help="device config files (%(default)s)")
    reload = p.add_mutually_exclusive_group()
    reload.add_argument("--reload-command", default=DEFAULT_RELOAD, help="how to reload Mosquitto (%(default)s)")
    reload.add_argument("--broker-pid", type=int, help="send SIGHUP to this Mosquitto process instead")
    reload.add_argument("--no-reload", action="store_true", help="only write files")
    p.add_argument("--mqtt-host", default="127.0.0.1", help="revoke/clear: the broker as seen from here (%(default)s)")
    p.add_argument("--mqtt-port", type=int, default=1883, help="revoke/clear: its plain MQTT port (%(default)s)")
    p.add_argument("--mqtt-wait", type=float, default=10.0, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="create empty broker files; set how devices reach the broker")
    init.add_argument("--host", help="broker host name or address devices connect to")
    init.add_argument("--port", type=int, help="broker port (1883, or 8883 with TLS)")
    init.add_argument("--topic-base", help="topic base (the site config's mqtt.topic_base)")
    init.add_argument("--tls-ca", help="CA certificate path on the devices ('' turns TLS off)")
    init.add_argument(
        "--public-url",
        help="the server as phones reach it, for kiosks' QR codes "
        "(default http://<host>:8080; set it to the HTTPS address behind a proxy)",
    )

    add = sub.add_parser("add", help="create an account: add counter 4 | add kiosk k1 | add display hall-1 --zone hall")
    add.add_argument("role", choices=(*ROLES, "server"))
    add.add_argument("ids", nargs="*", metavar="id", help="the id used in topics; a counter Pi may list several")
    add.add_argument("--zone", help="display: the zone whose calls it shows")
    add.add_argument("--replace", action="store_true", help="replace an existing account's password")
    add.add_argument("--site-config", default=str(DEFAULT_SITE_CONFIG), help="server: site config to update")

    add.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="keep the settings of this device config (e.g. the device's own /etc/numerek/<role>.toml); "
        "with --replace the earlier file in --config-dir is used by default",
    )

    reissue = sub.add_parser(
        "reissue", help="rewrite device configs for the current broker settings (TLS), keeping everything else"
    )
    reissue.add_argument("devices", nargs="*", metavar="account", help="e.g. counter-1 display-hall-1")
    reissue.add_argument("--all", action="store_true", help="every device account")

    rev = sub.add_parser("revoke", help="remove a device's account: revoke counter-4")
    rev.add_argument("device")
    clear = sub.add_parser("clear", help="clear the retained availability a revoked device left: clear counter-4")
    clear.add_argument("device")
    sub.add_parser("list", help="list accounts")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    broker_dir = Path(args.broker_dir)
    handlers = {"init": cmd_init, "add": cmd_add, "reissue": cmd_reissue, "revoke": cmd_revoke, "clear": cmd_clear}
    try:
        if args.command == "list":
            print(cmd_list(Registry.load(broker_dir / "devices.json"), args))
            return 0
        broker_dir.mkdir(parents=True, exist_ok=True)
        with open(broker_dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two admins provisioning at once must not lose an account
            done = handlers[args.command](Registry.load(broker_dir / "devices.json"), args)
        done = done if isinstance(done, Done) else Done(done)
        print(done.message)
        reload = None if args.no_reload else args.reload_command
        print(reload_broker(reload, args.broker_pid))
        if done.without_reload and done.after_reload is None:
            print(f"numerek-provision: warning: {done.without_reload}", file=sys.stderr)
        if done.after_reload is not None:
            ok, what = done.after_reload()
            print(what) if ok else print(f"numerek-provision: warning: {what}", file=sys.stderr)
        if done.cleanup:
            with open(broker_dir / ".lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                registry = Registry.load(broker_dir / "devices.json")
                registry.accounts.pop(PROVISION_USER, None)
                save(registry)
            reload_broker(reload, args.broker_pid)
    except ProvisionError as exc:
        print(f"numerek-provision: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"numerek-provision: {exc.strerror}: {exc.filename} (run with sudo?)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
