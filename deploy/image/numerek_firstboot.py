"""``numerek-firstboot``: make a freshly flashed Numerek Pi into the role written on its SD card.

Why: one image serves every role, so the office's IT person flashes the same file onto
every card and writes, on the card's boot partition (the FAT one any PC can open),
``numerek-setup.toml``: the role, the Pi's name, the server's address, and for a device the
file ``numerek-provision`` made for it on the server (its broker account). At the first
boot ``numerek-firstboot.service`` runs this before any Numerek unit.

Everything is checked before anything is changed: the setup file's fields, the device file
(by the role's own ``--check``, with the server address applied), the CA certificate, the
office config. A refusal prints what is wrong and where to fix it, and exits 2 with the
system as it was; the unit then fails visibly (``systemctl --failed``, the console) and
nothing starts. After success the device file (it holds a password) is deleted from the
FAT partition, which any PC can read, and the setup file is renamed to
``numerek-setup.done.toml`` so the step does not run again.

Exit status: 0 done, 2 refused (nothing changed), 1 an unexpected failure while applying.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

SETUP = "numerek-setup.toml"
DONE = "numerek-setup.done.toml"
ROLES = ("server", "kiosk", "display", "counter")
BROKER_TABLE = {"kiosk": "mqtt", "display": "mqtt", "counter": "mqtt"}
"""Where each device role's config keeps the broker address (server/provision writes the same)."""
UNIT_DIRS = ("etc/systemd/system", "lib/systemd/system", "usr/lib/systemd/system")
KEYS = {"role", "hostname", "server", "timezone", "device_file", "ca_file", "office_file", "ssh_authorized_key"}
HOSTNAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
DNS_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
SSH_KEY = re.compile(
    r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/=]+( [^\n]*)?"
)


class Refused(Exception):
    """The setup cannot be applied; the message says what to fix. Nothing was changed."""


@dataclass
class Plan:
    """What the setup file asks for, checked: applying it needs no more decisions."""

    role: str
    hostname: str
    server: str
    timezone: str | None = None
    config_text: str | None = None  # the role's config file, as it will be installed
    ca_text: str | None = None
    ca_path: str | None = None
    ssh_key: str | None = None
    remove_from_boot: list[Path] = field(default_factory=list)


def _units(role: str) -> list[str]:
    """What the role runs: its own unit, and on the server the broker."""
    return ["mosquitto.service", "numerek-server.service"] if role == "server" else [f"numerek-{role}.service"]


def _bin(name: str) -> Path:
    """Numerek's programs next to this interpreter (the release venv's bin)."""
    return Path(sys.executable).parent / name


def _inside(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def _boot_file(boot: Path, name: object, what: str) -> Path:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise Refused(f"{what} must be a file name on the boot partition, next to {SETUP}: {name!r}")
    path = boot / name
    if not path.is_file():
        raise Refused(f"{what} {name!r} is not on the boot partition ({boot}): copy it there next to {SETUP}")
    return path


def _run_check(role: str, text: str) -> None:
    """The role's own ``--check`` on the file as it will be installed."""
    with tempfile.TemporaryDirectory(prefix="numerek-firstboot-") as tmp:
        path = Path(tmp) / ("numerek.toml" if role == "server" else f"{role}.toml")
        path.write_text(text, encoding="utf-8")
        done = subprocess.run(
            [str(_bin(f"numerek-{role}")), "--config", str(path), "--check"],
            capture_output=True,
            text=True,
            timeout=600,
        )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().replace(str(path), "the file")
        raise Refused(f"the {role} config is not valid: {detail}")


def plan(boot: Path, root: Path) -> Plan:
    setup_path = boot / SETUP
    try:
        data = tomllib.loads(setup_path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise Refused(f"no {SETUP} on the boot partition ({boot})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise Refused(f"{SETUP} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise Refused(f"{SETUP}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}")
    role = data.get("role")
    if role not in ROLES:
        raise Refused(f"{SETUP}: role must be one of {', '.join(ROLES)}, not {role!r}")
    hostname = data.get("hostname")
    if not isinstance(hostname, str) or not HOSTNAME.fullmatch(hostname):
        raise Refused(
            f"{SETUP}: hostname {hostname!r} is not a valid name: lower-case letters, digits and '-', "
            'up to 63, e.g. "kiosk-wejscie"'
        )
    server = data.get("server")
    if not isinstance(server, str) or not _is_address(server):
        raise Refused(f'{SETUP}: server must be the server\'s address or name, e.g. "192.168.1.10", not {server!r}')
    p = Plan(role=role, hostname=hostname, server=server)
    for unit in _units(role):
        if not any((root / d / unit).is_file() for d in UNIT_DIRS):
            raise Refused(f"{unit} is not installed on this system: is this a Numerek image?")

    timezone = data.get("timezone")
    if timezone is not None:
        zone_file = root / "usr/share/zoneinfo" / str(timezone)
        if not isinstance(timezone, str) or ".." in timezone or not zone_file.is_file():
            raise Refused(f'{SETUP}: timezone {timezone!r} is not known; e.g. "Europe/Warsaw"')
        p.timezone = timezone

    key = data.get("ssh_authorized_key")
    if key is not None:
        if not isinstance(key, str) or not SSH_KEY.fullmatch(key.strip()):
            raise Refused(f"{SETUP}: ssh_authorized_key must be one public key line (ssh-ed25519 AAAA... name)")
        p.ssh_key = key.strip()

    if data.get("ca_file") is not None:
        ca = _boot_file(boot, data["ca_file"], "ca_file")
        text = ca.read_text(encoding="ascii", errors="replace")
        if "-----BEGIN CERTIFICATE-----" not in text or "PRIVATE KEY" in text:
            raise Refused(f"ca_file {ca.name!r} is not a PEM certificate (and must not hold a private key)")
        p.ca_text = text
        p.remove_from_boot.append(ca)

    if role == "server":
        if data.get("device_file") is not None:
            raise Refused(f"{SETUP}: a server has no device_file; its accounts are made on it by numerek-provision")
        if data.get("office_file") is not None:
            office = _boot_file(boot, data["office_file"], "office_file")
            p.config_text = office.read_text(encoding="utf-8")
            _run_check("server", p.config_text)
            p.remove_from_boot.append(office)
        elif not _inside(root, "/etc/numerek/numerek.toml").is_file():
            raise Refused("no office config: give office_file, or install the server role first")
        return p

    if data.get("office_file") is not None:
        raise Refused(f"{SETUP}: office_file is for the server; a {role} takes device_file")
    device = _boot_file(boot, data.get("device_file"), "device_file")
    text = device.read_text(encoding="utf-8")
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise Refused(f"device_file {device.name!r} is not valid TOML: {exc}") from None
    table = BROKER_TABLE[role]
    account = parsed.get(table, {}).get("username") if isinstance(parsed.get(table), dict) else None
    if not isinstance(account, str) or not account.startswith(f"{role}-"):
        raise Refused(
            f"device_file {device.name!r} is not a {role}'s file from numerek-provision "
            f"(its account is {account!r}, not {role}-...): "
            f"on the server run 'sudo numerek-provision add {role} ...' and copy /etc/numerek/devices/<account>.toml"
        )
    from server.provision import ProvisionError, set_keys

    try:
        p.config_text = set_keys(text, table, {"host": server})
    except ProvisionError as exc:
        raise Refused(f"device_file {device.name!r}: {exc}") from None
    _run_check(role, p.config_text)
    tls_ca = parsed[table].get("tls_ca")
    if tls_ca and p.ca_text is None and not _inside(root, str(tls_ca)).is_file():
        raise Refused(f"device_file {device.name!r} uses TLS with CA {tls_ca}: put the CA next to {SETUP} as ca_file")
    p.ca_path = str(tls_ca) if tls_ca else None
    p.remove_from_boot.append(device)
    return p


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(DNS_NAME.fullmatch(value))


def _group_id(root: Path, name: str) -> int:
    """The group's id in the target system's /etc/group (the target may be an image, not this machine)."""
    for line in (root / "etc/group").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == name:
            return int(parts[2])
    raise RuntimeError(f"no group {name} in {root / 'etc/group'}: is Numerek installed?")


def _write(path: Path, text: str, mode: int, gid: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(text, encoding="utf-8")
    os.chown(tmp, 0, gid)
    tmp.chmod(mode)
    tmp.replace(path)


def apply(p: Plan, boot: Path, root: Path) -> list[str]:
    done: list[str] = []
    live = root.resolve() == Path("/")
    numerek_gid = _group_id(root, "numerek")
    _write(root / "etc/hostname", p.hostname + "\n", 0o644)
    hosts = root / "etc/hosts"
    lines = [ln for ln in (hosts.read_text().splitlines() if hosts.exists() else []) if not ln.startswith("127.0.1.1")]
    _write(hosts, "\n".join([*lines, f"127.0.1.1\t{p.hostname}"]) + "\n", 0o644)
    if live:
        subprocess.run(["hostname", p.hostname], check=False)
    done.append(f"hostname {p.hostname}")
    if p.timezone:
        localtime = root / "etc/localtime"
        localtime.unlink(missing_ok=True)
        localtime.symlink_to(f"/usr/share/zoneinfo/{p.timezone}")
        _write(root / "etc/timezone", p.timezone + "\n", 0o644)
        done.append(f"time zone {p.timezone}")
    if p.ssh_key:
        _write(root / "root/.ssh/authorized_keys", p.ssh_key + "\n", 0o600)
        (root / "root/.ssh").chmod(0o700)
        done.append("SSH key for root")
    if p.ca_text is not None:
        ca_target = _inside(root, p.ca_path or "/etc/numerek/ca.crt")
        _write(ca_target, p.ca_text, 0o644)
        done.append(f"CA certificate {p.ca_path or '/etc/numerek/ca.crt'}")

    units = _units(p.role)
    if p.role == "server":
        site = _inside(root, "/etc/numerek/numerek.toml")
        if p.config_text is not None:
            _write(site, p.config_text, 0o640, numerek_gid)
        broker_dir = _inside(root, "/etc/mosquitto/numerek")
        provision = [str(_bin("numerek-provision")), "--no-reload", "--broker-dir", str(broker_dir)]
        provision += ["--config-dir", str(_inside(root, "/etc/numerek/devices"))]
        subprocess.run([*provision, "init", "--host", p.server], check=True, capture_output=True, text=True)
        listed = subprocess.run([*provision, "list"], check=True, capture_output=True, text=True).stdout
        if not re.search(r"^server ", listed, re.M):
            subprocess.run([*provision, "add", "server", "--site-config", str(site)], check=True, capture_output=True)
        done.append(f"broker accounts: devices are told to connect to {p.server}")
    else:
        assert p.config_text is not None
        _write(_inside(root, f"/etc/numerek/{p.role}.toml"), p.config_text, 0o640, numerek_gid)
        done.append(f"/etc/numerek/{p.role}.toml (broker {p.server})")
    subprocess.run(["systemctl", f"--root={root}", "enable", *units], check=True, capture_output=True)
    done.append(f"enabled {' '.join(units)}")
    if live and Path("/run/systemd/system").is_dir():
        subprocess.run(["systemctl", "start", "--no-block", *units], check=False)

    # The device file holds the broker password: it must not stay on a partition any PC can read.
    for path in p.remove_from_boot:
        path.unlink(missing_ok=True)
    setup = boot / SETUP
    note = f"\n# applied by numerek-firstboot at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {'; '.join(done)}\n"
    setup.write_text(setup.read_text(encoding="utf-8-sig") + note, encoding="utf-8")
    setup.replace(boot / DONE)
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="numerek-firstboot", description=__doc__.split("\n\n")[0])
    ap.add_argument("--boot", default="/boot/firmware", help="the boot partition (%(default)s)")
    ap.add_argument("--root", default="/", help="the system to set up (%(default)s; another path for tests)")
    ap.add_argument("--check", action="store_true", help="only check the setup file; change nothing")
    args = ap.parse_args(argv)
    boot, root = Path(args.boot), Path(args.root)
    try:
        p = plan(boot, root)
    except Refused as exc:
        print(f"numerek-firstboot: REFUSED, nothing was changed: {exc}", file=sys.stderr)
        print(
            f"numerek-firstboot: fix {boot / SETUP} (on the SD card's boot partition) and boot again", file=sys.stderr
        )
        return 2
    if args.check:
        print(f"numerek-firstboot: {SETUP} is fine: {p.role} {p.hostname}, server {p.server}")
        return 0
    for line in apply(p, boot, root):
        print(f"numerek-firstboot: {line}")
    print(f"numerek-firstboot: this Pi is now the {p.role} {p.hostname}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
