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

from protocol.topics import ID_PATTERN, Topics

ROLES = ("counter", "kiosk", "display", "monitor")
"""Device roles, plus ``monitor``: a read-only account for a technician's ``mosquitto_sub``."""
SERVER_USER = "server"
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
    role: str  # "server", "counter", "kiosk" or "display"
    ids: list[str] = field(default_factory=list)  # ids inside topics: ["4"] for counter-4, ["1", "2"] for counter-1-2
    zones: list[str] = field(default_factory=list)  # displays: the zone shown
    password_hash: str = ""
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "ids": self.ids,
            "zones": self.zones,
            "password_hash": self.password_hash,
            "created": self.created,
        }


@dataclass
class Broker:
    """How devices reach the broker; written into every device config."""

    host: str = "numerek.local"
    port: int = 1883
    topic_base: str = "numerek"
    tls_ca: str | None = None  # path of the CA certificate *on the device*; TLS on when set


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


def device_name(role: str, ids: list[str]) -> str:
    """The username, client id and availability id of a device: ``counter-4``, ``kiosk-k1``.

    A counter Pi driving two counters is ``counter-1-2``, the name numerek-counter uses by default.
    """
    return f"{role}-{'-'.join(ids)}"


# --------------------------------------------------------------------------- ACL


def acl_rules(account: Account, topics: Topics) -> list[tuple[str, str]]:
    """(access, topic filter) pairs for one account: exactly what its role needs.

    Anything not listed is refused by Mosquitto, including ``$SYS`` and other bases.
    """
    t = topics
    if account.role == "server":
        return [
            ("readwrite", f"{t.base}/server/#"),
            ("readwrite", t.services),
            ("readwrite", f"{t.base}/counter/+/+"),
            ("readwrite", f"{t.base}/zone/+/+"),
            ("readwrite", f"{t.base}/kiosk/+/+"),
            ("readwrite", f"{t.base}/kiosk/+/response/#"),
            ("read", f"{t.base}/device/+/availability"),
        ]
    own = [
        ("readwrite", t.device_availability(account.username)),
        ("read", t.server_availability),
        ("read", t.services),
    ]
    if account.role == "counter":
        rules = []
        for cid in account.ids:
            rules += [
                ("write", t.counter_command(cid)),
                ("read", t.counter_state(cid)),
                ("read", t.counter_reply(cid)),
            ]
        return rules + own
    if account.role == "kiosk":
        (kid,) = account.ids
        return [
            ("write", t.kiosk_request(kid)),
            ("write", t.kiosk_fault(kid)),
            ("read", t.kiosk_response(kid)),
            ("read", f"{t.kiosk_response(kid)}/#"),
        ] + own
    if account.role == "display":
        return [("read", f"{t.base}/zone/{z}/#") for z in account.zones] + own
    if account.role == "monitor":
        # Watching the traffic is how problems are diagnosed on site; doing so with the
        # server's account would log the server out (the client id is the account name).
        return [("read", f"{t.base}/#")]
    raise ProvisionError(f"unknown role {account.role!r}")


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


def render_device_config(account: Account, broker: Broker, password: str) -> str:
    """The device's own config file: its role's example with this device's identity and credentials.

    Starting from the example keeps its comments (pins, printer, screen options) in front of
    whoever finishes the file for this device.
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
    text = _example(role) if role != "monitor" else MINIMAL[role]
    if role == "counter":
        text = set_toml_keys(text, "broker", credentials)
        text = set_toml_keys(text, "unit", {"device": account.username})
        text = set_toml_keys(text, "counters", {"id": ids[0]}, array=True)
    elif role == "kiosk":
        text = set_toml_keys(text, "kiosk", {"id": ids[0]})
        text = set_toml_keys(text, "mqtt", credentials)
    elif role == "display":
        text = set_toml_keys(text, "display", {"id": ids[0], "zone": account.zones[0]})
        text = set_toml_keys(text, "mqtt", credentials)
    else:
        text = set_toml_keys(text, "mqtt", credentials)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = [f"# Numerek {role} {', '.join(ids)} ({account.username}), from numerek-provision, {now}."]
    if role == "monitor":
        head.append("# A read-only account for watching all Numerek traffic. Keep this file private.")
    else:
        head += [
            f"# Install on the device as /etc/numerek/{role}.toml, owner root:numerek, mode 0640, then check it:",
            f"#   numerek-{role} --config /etc/numerek/{role}.toml --check",
            "# It holds this device's broker password: do not copy it to another device.",
        ]
    if len(ids) > 1:
        head.append(f"# This unit may also command counter(s) {', '.join(ids[1:])}: add a [[counters]] block for each.")
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
    save(registry)
    tls = f", TLS with CA {b.tls_ca}" if b.tls_ca else ""
    return f"broker for devices: {b.host}:{b.port}, topics under {b.topic_base}/{tls}"


def cmd_add(registry: Registry, args: argparse.Namespace) -> str:
    role = args.role
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if role == "server":
        if args.ids:
            raise ProvisionError("'add server' takes no id")
        account = Account(SERVER_USER, "server", created=now)
    else:
        if not args.ids:
            raise ProvisionError(
                f"'add {role}' needs the device id, e.g. 'add {role} {'4' if role == 'counter' else 'k1'}'"
            )
        if role != "counter" and len(args.ids) > 1:
            raise ProvisionError(f"one {role} per account: 'add {role} {args.ids[0]}'")
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
        account = Account(device_name(role, ids), role, ids, zones, created=now)
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
    config = render_device_config(account, registry.broker, password)
    out = Path(args.config_dir) / f"{account.username}.toml"
    write_private(out, config, 0o600)  # first: if the broker files cannot be written, nothing is enabled
    registry.accounts[account.username] = account
    save(registry)
    if role == "monitor":
        return f"{account.username}: read-only account written; its password is in {out}"
    return f"{account.username}: account and ACL written; copy {out} to the device as /etc/numerek/{role}.toml"


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
    return f"server account '{SERVER_USER}' written into [mqtt] of {site_config}"


def cmd_revoke(registry: Registry, args: argparse.Namespace) -> str:
    name = args.device
    if name not in registry.accounts:
        known = ", ".join(sorted(registry.accounts)) or "none"
        raise ProvisionError(f"no account {name!r} (known: {known})")
    del registry.accounts[name]
    save(registry)
    leftover = Path(args.config_dir) / f"{name}.toml"
    leftover.unlink(missing_ok=True)
    return f"{name}: revoked (password and ACL removed)"


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
    sub = p.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="create empty broker files; set how devices reach the broker")
    init.add_argument("--host", help="broker host name or address devices connect to")
    init.add_argument("--port", type=int, help="broker port (1883, or 8883 with TLS)")
    init.add_argument("--topic-base", help="topic base (the site config's mqtt.topic_base)")
    init.add_argument("--tls-ca", help="CA certificate path on the devices ('' turns TLS off)")

    add = sub.add_parser("add", help="create an account: add counter 4 | add kiosk k1 | add display hall-1 --zone hall")
    add.add_argument("role", choices=(*ROLES, "server"))
    add.add_argument("ids", nargs="*", metavar="id", help="the id used in topics; a counter Pi may list several")
    add.add_argument("--zone", help="display: the zone whose calls it shows")
    add.add_argument("--replace", action="store_true", help="replace an existing account's password")
    add.add_argument("--site-config", default=str(DEFAULT_SITE_CONFIG), help="server: site config to update")

    rev = sub.add_parser("revoke", help="remove a device's account: revoke counter-4")
    rev.add_argument("device")
    sub.add_parser("list", help="list accounts")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    broker_dir = Path(args.broker_dir)
    handler = {"init": cmd_init, "add": cmd_add, "revoke": cmd_revoke, "list": cmd_list}[args.command]
    try:
        if args.command == "list":
            print(cmd_list(Registry.load(broker_dir / "devices.json"), args))
            return 0
        broker_dir.mkdir(parents=True, exist_ok=True)
        with open(broker_dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two admins provisioning at once must not lose an account
            print(handler(Registry.load(broker_dir / "devices.json"), args))
        print(reload_broker(None if args.no_reload else args.reload_command, args.broker_pid))
    except ProvisionError as exc:
        print(f"numerek-provision: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"numerek-provision: {exc.strerror}: {exc.filename} (run with sudo?)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
