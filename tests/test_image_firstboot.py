"""The image's first boot (deploy/image/numerek_firstboot.py) against a fake boot partition and root.

The real script, run as the unit runs it, on a folder standing in for the SD card's FAT
partition and another standing in for the root file system. Device files come from the
real ``numerek-provision``, as the IT person copies them from the server.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.harness import ROOT, run_tool

SCRIPT = ROOT / "deploy" / "image" / "numerek_firstboot.py"
EXAMPLE = ROOT / "deploy" / "image" / "files" / "boot" / "firmware" / "numerek-setup.example.toml"
BIN = Path(sys.executable).parent
NUMEREK_GID = 4242
needs_systemctl = pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl is not installed")


class Card:
    """A flashed card: ``boot`` (the FAT partition) and ``root`` (the installed system)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.boot = base / "boot"
        self.root = base / "root"
        self.provision_dir = base / "server"
        self.boot.mkdir(parents=True)
        for d in ("etc/systemd/system", "etc/numerek", "usr/share/zoneinfo/Europe"):
            (self.root / d).mkdir(parents=True)
        shutil.copy("/usr/share/zoneinfo/Europe/Warsaw", self.root / "usr/share/zoneinfo/Europe/Warsaw")
        (self.root / "etc/group").write_text(f"root:x:0:\nnumerek:x:{NUMEREK_GID}:\n")
        (self.root / "etc/hostname").write_text("numerek\n")
        (self.root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tnumerek\n")
        for unit in (ROOT / "systemd").glob("numerek-*.service"):
            shutil.copy(unit, self.root / "etc/systemd/system" / unit.name)
        # Debian's mosquitto package's unit, as the image has it.
        (self.root / "lib/systemd/system").mkdir(parents=True)
        (self.root / "lib/systemd/system/mosquitto.service").write_text(
            "[Unit]\nDescription=Mosquitto MQTT Broker\n[Service]\nExecStart=/usr/sbin/mosquitto -c /etc/mosquitto/mosquitto.conf\n"
            "[Install]\nWantedBy=multi-user.target\n"
        )
        site = self.root / "etc/numerek/numerek.toml"
        shutil.copy(ROOT / "server" / "examples" / "county_office.toml", site)
        os.chown(site, 0, NUMEREK_GID)
        site.chmod(0o640)
        self.provision("init", "--host", "numerek-serwer.local")

    def provision(self, *args: str) -> None:
        """The server's numerek-provision (its own registry, not this card's)."""
        done = run_tool(
            BIN / "numerek-provision",
            *("--no-reload", "--broker-dir", str(self.provision_dir / "broker")),
            *("--config-dir", str(self.provision_dir / "devices"), *args),
            timeout=120,
        )
        assert done.returncode == 0, done.stderr

    def device_file(self, account: str, *add_args: str) -> str:
        """``numerek-provision add ...`` on the server, the file copied onto the boot partition."""
        self.provision("add", *add_args)
        shutil.copy(self.provision_dir / "devices" / f"{account}.toml", self.boot / f"{account}.toml")
        return f"{account}.toml"

    def setup(self, text: str) -> None:
        (self.boot / "numerek-setup.toml").write_text(text, encoding="utf-8")

    def firstboot(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SCRIPT), "--boot", str(self.boot), "--root", str(self.root), *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=self.base,
        )

    def state(self) -> dict[str, tuple[str, int, int, int]]:
        """Every file and folder on both partitions: content hash or link target, mode, owner, group."""
        out = {}
        for top in (self.boot, self.root):
            for path in sorted([top, *top.rglob("*")]):
                st = path.lstat()
                if stat.S_ISLNK(st.st_mode):
                    what = "-> " + os.readlink(path)
                elif path.is_file():
                    what = hashlib.sha256(path.read_bytes()).hexdigest()
                else:
                    what = "dir"
                out[str(path.relative_to(self.base))] = (what, st.st_mode, st.st_uid, st.st_gid)
        return out

    def enabled(self) -> list[str]:
        wants = self.root / "etc/systemd/system/multi-user.target.wants"
        return sorted(p.name for p in wants.iterdir()) if wants.exists() else []


@pytest.fixture
def card(tmp_path) -> Card:
    return Card(tmp_path)


def kiosk_setup(device_file: str, **extra: str) -> str:
    fields = {
        "role": "kiosk",
        "hostname": "kiosk-wejscie",
        "server": "192.168.1.10",
        "timezone": "Europe/Warsaw",
        "device_file": device_file,
        **extra,
    }
    return "".join(f'{k} = "{v}"\n' for k, v in fields.items())


@needs_systemctl
def test_a_kiosk_card_becomes_that_kiosk_with_its_account_name_and_server(card):
    name = card.device_file("kiosk-wejscie", "kiosk", "wejscie")
    card.setup(kiosk_setup(name))
    done = card.firstboot()
    assert done.returncode == 0, done.stderr
    assert "this Pi is now the kiosk kiosk-wejscie" in done.stdout

    config = card.root / "etc/numerek/kiosk.toml"
    st = config.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, NUMEREK_GID)
    installed = tomllib.loads(config.read_text())
    issued = tomllib.loads((card.provision_dir / "devices" / name).read_text())
    assert installed["mqtt"]["host"] == "192.168.1.10"  # the server's address from the setup file
    assert installed["mqtt"]["username"] == "kiosk-wejscie"
    assert installed["mqtt"]["password"] == issued["mqtt"]["password"]
    assert installed["kiosk"] == issued["kiosk"]
    assert (card.root / "etc/hostname").read_text() == "kiosk-wejscie\n"
    assert "127.0.1.1\tkiosk-wejscie" in (card.root / "etc/hosts").read_text()
    assert os.readlink(card.root / "etc/localtime") == "/usr/share/zoneinfo/Europe/Warsaw"
    assert card.enabled() == ["numerek-kiosk.service"]
    # The password does not stay on the partition any PC can read; the step does not run twice.
    assert not (card.boot / name).exists()
    assert not (card.boot / "numerek-setup.toml").exists()
    assert "applied by numerek-firstboot" in (card.boot / "numerek-setup.done.toml").read_text()
    again = card.firstboot()
    assert again.returncode == 2 and "no numerek-setup.toml" in again.stderr


@needs_systemctl
def test_a_counter_and_a_display_card_get_their_own_roles(card, tmp_path):
    name = card.device_file("counter-3-4", "counter", "3", "4")
    card.setup(
        f'role = "counter"\nhostname = "stanowisko-3"\nserver = "numerek-serwer.local"\ndevice_file = "{name}"\n'
    )
    done = card.firstboot()
    assert done.returncode == 0, done.stderr
    counter = tomllib.loads((card.root / "etc/numerek/counter.toml").read_text())
    assert counter["mqtt"]["host"] == "numerek-serwer.local"
    assert [c["id"] for c in counter["counters"]] == ["3", "4"]
    assert card.enabled() == ["numerek-counter.service"]

    other = Card(tmp_path / "display")
    name = other.device_file("display-hall-1", "display", "hall-1", "--zone", "hall")
    other.setup(f'role = "display"\nhostname = "ekran-hala"\nserver = "192.168.1.10"\ndevice_file = "{name}"\n')
    done = other.firstboot()
    assert done.returncode == 0, done.stderr
    assert tomllib.loads((other.root / "etc/numerek/display.toml").read_text())["display"]["zone"] == "hall"
    assert other.enabled() == ["numerek-display.service"]


@needs_systemctl
def test_a_server_card_makes_its_own_broker_accounts_none_is_shared_between_cards(card, tmp_path):
    card.setup('role = "server"\nhostname = "numerek-serwer"\nserver = "192.168.1.10"\n')
    done = card.firstboot()
    assert done.returncode == 0, done.stderr
    assert card.enabled() == ["mosquitto.service", "numerek-server.service"]
    registry = card.root / "etc/mosquitto/numerek/devices.json"
    assert '"host": "192.168.1.10"' in registry.read_text()
    site = tomllib.loads((card.root / "etc/numerek/numerek.toml").read_text())
    assert site["mqtt"]["username"] == "server" and len(site["mqtt"]["password"]) >= 20

    other = Card(tmp_path / "second")
    other.setup('role = "server"\nhostname = "numerek-serwer"\nserver = "192.168.1.10"\n')
    assert other.firstboot().returncode == 0
    assert (
        tomllib.loads((other.root / "etc/numerek/numerek.toml").read_text())["mqtt"]["password"]
        != (site["mqtt"]["password"])
    )


BROKEN = {
    "not TOML": ('role = "kiosk\n', "is not valid TOML"),
    "unknown role": ('role = "printer"\nhostname = "a"\nserver = "1.2.3.4"\n', "role must be one of"),
    "bad host name": (
        'role = "kiosk"\nhostname = "Kiosk_1"\nserver = "1.2.3.4"\n',
        "hostname 'Kiosk_1' is not a valid",
    ),
    "bad server": ('role = "kiosk"\nhostname = "k"\nserver = "192.168.1.10 "\n', "server must be the server's address"),
    "typo in a key": ('role = "kiosk"\nhostnme = "k"\nserver = "1.2.3.4"\n', "unknown setting(s) hostnme"),
    "unknown time zone": ("TZ", "timezone 'Europe/Warszawa' is not known"),
    "no device file": ("MISSING", "device_file 'kiosk-wejscie.toml' is not on the boot partition"),
    "a path, not a file name": ("PATH", "must be a file name on the boot partition"),
    "another role's file": ("WRONG_ROLE", "is not a kiosk's file from numerek-provision"),
    "a file the kiosk refuses": ("REFUSED", "the kiosk config is not valid"),
    "a private key as CA": ("KEY", "is not a PEM certificate"),
    "a server given a device file": ("SERVER_FILE", "a server has no device_file"),
    "not a Numerek image": ("NO_UNIT", "numerek-kiosk.service is not installed on this system"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_setup_is_refused_with_a_clear_message_and_changes_nothing(card, case):
    text, message = BROKEN[case]
    name = card.device_file("kiosk-wejscie", "kiosk", "wejscie")
    if text == "TZ":
        text = kiosk_setup(name, timezone="Europe/Warszawa")
    elif text == "MISSING":
        (card.boot / name).unlink()
        text = kiosk_setup(name)
    elif text == "PATH":
        text = kiosk_setup("../root/etc/passwd")
    elif text == "WRONG_ROLE":
        text = kiosk_setup(card.device_file("display-hall-1", "display", "hall-1", "--zone", "hall"))
    elif text == "REFUSED":
        device = card.boot / name
        device.write_text(device.read_text().replace("idle_timeout_s = 20", "idle_timeout_s = -5"))
        text = kiosk_setup(name)
    elif text == "KEY":
        (card.boot / "ca.crt").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        text = kiosk_setup(name, ca_file="ca.crt")
    elif text == "NO_UNIT":
        (card.root / "etc/systemd/system/numerek-kiosk.service").unlink()
        text = kiosk_setup(name)
    elif text == "SERVER_FILE":
        text = f'role = "server"\nhostname = "s"\nserver = "1.2.3.4"\ndevice_file = "{name}"\n'
    card.setup(text)
    before = card.state()
    done = card.firstboot()
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr, done.stderr
    assert "REFUSED, nothing was changed" in done.stderr
    assert card.state() == before


def test_the_shipped_example_is_what_the_script_reads(card):
    """The example on the image's boot partition, filled in as it says, passes the script's own check."""
    name = card.device_file("kiosk-wejscie", "kiosk", "wejscie")
    assert f'device_file = "{name}"' in EXAMPLE.read_text()
    shutil.copy(EXAMPLE, card.boot / "numerek-setup.toml")
    before = card.state()
    done = card.firstboot("--check")
    assert done.returncode == 0, done.stderr
    assert "is fine: kiosk kiosk-wejscie, server 192.168.1.10" in done.stdout
    assert card.state() == before
