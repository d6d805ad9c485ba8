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
``kiosk``, ``display``, ``monitor`` (read-only, for a technician's ``mosquitto_sub``) and
``replicator`` (a branch's ``numerek-replicate``: ``add replicator wola`` for branch wola).

A device's config file is finished by the office (printer, pins, screen), so the tool never
throws that work away: ``add --replace`` and ``reissue`` (the move to TLS) start from the
existing file and change only what provisioning owns. ``revoke`` also deletes what the
device left retained on the broker (its availability, a kiosk's fault), through a one-off
``provision`` account whose password exists only for that run.

The package, one module per concern: :mod:`.accounts` (accounts, passwords, the registry),
:mod:`.acl` (the ACL, from the topic tree), :mod:`.broker` (the files Mosquitto reads, its
reload, clearing retained messages), :mod:`.device_config` (each device's config file,
edited with tomlkit), :mod:`.tls` (``reissue``), and this command line.
"""

from __future__ import annotations

import argparse
import fcntl
import re
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from protocol.topics import Topics, device_name
from server.provision.accounts import (
    MAX_COUNTERS,
    PROVISION_USER,
    ROLES,
    SERVER_USER,
    Account,
    ProvisionError,
    Registry,
    check_id,
    hash_password,
    new_password,
)
from server.provision.acl import retained_topics
from server.provision.broker import connect_and_clear, reload_broker, save, write_private
from server.provision.device_config import render_device_config, set_keys
from server.provision.tls import reissue

DEFAULT_BROKER_DIR = Path("/etc/mosquitto/numerek")
DEFAULT_CONFIG_DIR = Path("/etc/numerek/devices")
DEFAULT_SITE_CONFIG = Path("/etc/numerek/numerek.toml")
DEFAULT_RELOAD = "systemctl reload-or-restart mosquitto.service"
_EXAMPLE_ID = {"counter": "4", "replicator": "wola"}


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
    after_reload: Callable[[], tuple[bool, str]] | None = None  # (succeeded, what happened)
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
            raise ProvisionError(f"'add {role}' needs the device id, e.g. 'add {role} {_EXAMPLE_ID.get(role, 'k1')}'")
        if role != "counter" and len(args.ids) > 1:
            raise ProvisionError(f"one {role} per account: 'add {role} {args.ids[0]}'")
        if len(args.ids) > MAX_COUNTERS:
            raise ProvisionError(f"one counter unit drives at most {MAX_COUNTERS} counters")
        ids = [check_id(i, f"{role} id") for i in args.ids]
        if len(set(ids)) != len(ids):
            raise ProvisionError(f"a counter id is repeated: {' '.join(ids)}")
        zones = []
        if role == "display":
            if not args.zone:
                raise ProvisionError("a display needs --zone: the zone (hall) whose calls it shows")
            zones = [check_id(args.zone, "zone")]
        elif args.zone:
            raise ProvisionError("--zone is only for displays")
        account = Account(device_name(role, *ids), role, ids, zones, created=now)
        check_id(account.username, "device name")
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
    if role == "replicator":
        return (
            f"{account.username}: account and ACL written; install {out} as /etc/numerek/replicator.toml "
            "(root:numerek 0640) and run numerek-replicate with --account /etc/numerek/replicator.toml"
        )
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
    new = set_keys(old, "mqtt", {"username": SERVER_USER, "password": password})
    registry.accounts[account.username] = account
    save(registry)
    # Never world-readable once it holds a password; the numerek group (the server) keeps reading it.
    write_private(site_config, new, (st.st_mode & 0o770) or 0o640, st.st_gid, st.st_uid)
    return (
        f"server account '{SERVER_USER}' written into [mqtt] of {site_config}; "
        "a running server keeps the old password: sudo systemctl restart numerek-server"
    )


def cmd_reissue(registry: Registry, args: argparse.Namespace) -> str:
    return reissue(registry, list(args.devices), args.all, Path(args.config_dir))


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
        ok, what = connect_and_clear(host, port, password, topics, wait)
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
    name = check_id(args.device, "device name")
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
    rows = [f"{'account':<24} {'role':<10} {'zones':<20} created"]
    for name, a in sorted(registry.accounts.items()):
        rows.append(f"{name:<24} {a.role:<10} {','.join(a.zones) or '-':<20} {a.created}")
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
    handlers: dict[str, Callable[[Registry, argparse.Namespace], str | Done]] = {
        "init": cmd_init,
        "add": cmd_add,
        "reissue": cmd_reissue,
        "revoke": cmd_revoke,
        "clear": cmd_clear,
    }
    try:
        if args.command == "list":
            print(cmd_list(Registry.load(broker_dir / "devices.json"), args))
            return 0
        broker_dir.mkdir(parents=True, exist_ok=True)
        with open(broker_dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two admins provisioning at once must not lose an account
            result = handlers[args.command](Registry.load(broker_dir / "devices.json"), args)
        done = result if isinstance(result, Done) else Done(result)
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
