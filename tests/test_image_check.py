"""deploy/image/check-image.sh's content checks, on a small image made in a temporary folder.

The real image takes over an hour to build under emulation, so CI cannot check one. This
builds a card that has what the build puts there (the image's own config files, the fstab
the build script writes, the units, the user and the owners and modes) but no Debian inside,
assembles it with the build's own deploy/image/assemble.sh, and runs the checker as a user
would (``check-image.sh --contents-only``: no root, nothing mounted). A good card passes;
each mistake an image could ship with is reported by name and fails the check.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness import ROOT

CHECK = ROOT / "deploy" / "image" / "check-image.sh"
FILES = ROOT / "deploy" / "image" / "files"
GID = 996  # numerek's group, as systemd-sysusers would give it on a card
RELEASE = "releases/0.9.0-abc1234"

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("sfdisk", "mkfs.vfat", "mcopy", "mkfs.ext4", "debugfs")),
    reason="fdisk, dosfstools, mtools or e2fsprogs missing",
)


def _fstab() -> str:
    build = (ROOT / "deploy" / "image" / "build-image.sh").read_text()
    found = re.search(r"> \"\$root/etc/fstab\" <<'EOF'\n(.*?)\nEOF", build, re.S)
    assert found
    return found.group(1) + "\n"


def _elf_header(machine: int) -> bytes:
    """The first bytes of a 64-bit little-endian ELF executable for one machine (0xb7 = AArch64)."""
    return b"\x7fELF\x02\x01\x01" + bytes(9) + (2).to_bytes(2, "little") + machine.to_bytes(2, "little") + bytes(44)


def _initramfs(names: list[str]) -> bytes:
    """A gzip'd newc cpio archive (what mkinitramfs writes) with empty members of these names."""
    out = b""
    for ino, name in enumerate([*names, "TRAILER!!!"], start=1):
        fields = [ino, 0o100755, 0, 0, 1, 0, 0, 0, 0, 0, 0, len(name) + 1, 0]
        header = b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
        out += header + bytes(-len(header) % 4)
    return gzip.compress(out)


def _card(tmp_path: Path) -> tuple[Path, Path]:
    """A root folder and a boot-partition folder as build-image.sh leaves them."""
    root, fw = tmp_path / "root", tmp_path / "firmware"
    shutil.copytree(FILES / "etc", root / "etc")
    shutil.copytree(FILES / "boot" / "firmware", fw)
    etc = root / "etc"
    (etc / "fstab").write_text(_fstab())
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nnumerek:x:997:996:Numerek:/var/lib/numerek:/usr/sbin/nologin\n"
    )
    groups = ["root:x:0:", "numerek:x:996:"]
    groups += [f"{g}:x:{900 + i}:numerek" for i, g in enumerate(["gpio", "i2c", "video", "render", "input", "lp"])]
    groups += ["dialout:x:20:numerek", "audio:x:29:numerek"]
    (etc / "group").write_text("\n".join(groups) + "\n")
    (etc / "shadow").write_text("root:!*:19000:0:99999:7:::\nnumerek:!:19000::::::\n")
    (etc / "machine-id").write_text("")
    (etc / "numerek").mkdir()
    (etc / "numerek" / "numerek.toml").write_text('[mqtt]\nhost = "localhost"\n')
    (etc / "ssh" / "sshd_config").write_text("Include /etc/ssh/sshd_config.d/*.conf\n")
    system = etc / "systemd" / "system"
    for role in ("server", "kiosk", "display", "counter"):
        shutil.copy(ROOT / "systemd" / f"numerek-{role}.service", system)
    wants = {
        "multi-user.target.wants": ["numerek-firstboot", "ssh", "systemd-networkd", "avahi-daemon"],
        "sysinit.target.wants": ["systemd-timesyncd"],
    }
    for target, units in wants.items():
        (system / target).mkdir(parents=True, exist_ok=True)
        for unit in units:
            where = "/etc/systemd/system" if unit == "numerek-firstboot" else "/lib/systemd/system"
            (system / target / f"{unit}.service").symlink_to(f"{where}/{unit}.service")
    status = "".join(
        f"Package: {p}\nStatus: install ok installed\nArchitecture: arm64\n\n"
        for p in ("linux-image-arm64", "raspi-firmware", "mosquitto", "openssh-server", "systemd-timesyncd")
    )
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(status)
    (root / "var/lib/numerek").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    # As large as a real one (6 MB): the checker reads its first bytes and closes the pipe.
    (root / "usr/bin/python3.11").write_bytes(_elf_header(0xB7) + bytes(6 << 20))
    sbin = root / "usr/local/sbin"
    sbin.mkdir(parents=True)
    (sbin / "numerek-firstboot").write_text("#!/bin/sh\n")
    (sbin / "numerek-firstboot").chmod(0o755)
    opt = root / "opt/numerek"
    (opt / RELEASE / "venv/bin").mkdir(parents=True)
    (opt / RELEASE / "RELEASE").write_text("0.9.0-abc1234\n")
    for role in ("server", "kiosk", "display", "counter"):
        exe = opt / RELEASE / "venv/bin" / f"numerek-{role}"
        exe.write_text("#!/opt/numerek/venv/bin/python\n")
        exe.chmod(0o755)
    (opt / "current").symlink_to(RELEASE)
    (opt / "venv").symlink_to("current/venv")
    (opt / "roles").write_text("server\nkiosk\ndisplay\ncounter\n")
    for f, content in {
        "config.txt": "arm_64bit=1\nenable_uart=0\n",
        "cmdline.txt": "console=tty1 root=LABEL=RASPIROOT rw fsck.repair=yes quiet vt.global_cursor_default=0\n",
        "start4.elf": "",
        "fixup4.dat": "",
        "bcm2711-rpi-4-b.dtb": "",
        "vmlinuz-6.1.0-28-arm64": "",
    }.items():
        (fw / f).write_text(content)
    (fw / "initrd.img-6.1.0-28-arm64").write_bytes(_initramfs(["usr/sbin/fsck", "usr/sbin/fsck.ext4", "init"]))
    (etc / "numerek").chmod(0o750)
    (etc / "numerek" / "numerek.toml").chmod(0o640)
    return root, fw


def _check(tmp_path: Path, root: Path, fw: Path, owners: dict[str, tuple[int, int]]) -> subprocess.CompletedProcess:
    img = tmp_path / "card.img"
    script = f'. "{ROOT}/deploy/image/assemble.sh" && assemble_image "{root}" "{fw}" "{img}" 64'
    subprocess.run(["bash", "-c", script], check=True, timeout=300, capture_output=True)
    # Owners as install.sh sets them (root:numerek), written into the inodes: no root needed here.
    table = subprocess.run(["sfdisk", "-d", str(img)], capture_output=True, text=True, check=True).stdout
    offset = int(re.findall(r"start=\s*(\d+)", table)[1]) * 512
    requests = [
        f"set_inode_field {path} uid {uid}\nset_inode_field {path} gid {gid}" for path, (uid, gid) in owners.items()
    ]
    subprocess.run(
        ["debugfs", "-w", "-f", "-", f"{img}?offset={offset}"],
        input="\n".join(requests) + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return subprocess.run(
        [str(CHECK), "--contents-only", str(img)], capture_output=True, text=True, timeout=300, env=dict(os.environ)
    )


OWNERS = {"/etc/numerek": (0, GID), "/etc/numerek/numerek.toml": (0, GID)}


def test_a_card_as_the_build_makes_it_passes_every_content_check(tmp_path):
    root, fw = _card(tmp_path)
    done = _check(tmp_path, root, fw, OWNERS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout
    assert "PASSED: every check of the contents held" in done.stdout
    # The checks a user reads: owners from the inodes, and the units as a card has them.
    for line in (
        "ok    /etc/numerek/numerek.toml is root:numerek 0640",
        "ok    numerek-server.service installed, not enabled (the first boot enables one)",
        "ok    journal in RAM (Storage=volatile)",
        "ok    hardware watchdog: RuntimeWatchdogSec=14s",
        "ok    FAT label RASPIFIRM",
        "ok    ext4 label RASPIROOT",
        "ok    programs are arm64 (python3.11 is an AArch64 ELF)",
        "ok    the initramfs can check the root file system (fsck and fsck.ext4)",
    ):
        assert line in done.stdout, done.stdout


def _enable_server(root: Path, fw: Path) -> None:
    wants = root / "etc/systemd/system/multi-user.target.wants"
    (wants / "numerek-server.service").symlink_to("/etc/systemd/system/numerek-server.service")


def _persistent_journal(root: Path, fw: Path) -> None:
    conf = root / "etc/systemd/journald.conf.d/60-numerek.conf"
    conf.write_text(conf.read_text().replace("Storage=volatile", "Storage=persistent"))


def _host_key(root: Path, fw: Path) -> None:
    (root / "etc/ssh/ssh_host_ed25519_key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")


def _readable_config(root: Path, fw: Path) -> None:
    (root / "etc/numerek/numerek.toml").chmod(0o644)


def _setup_left_on_card(root: Path, fw: Path) -> None:
    (fw / "numerek-setup.toml").write_text('role = "server"\n')


def _x86_programs(root: Path, fw: Path) -> None:
    (root / "usr/bin/python3.11").write_bytes(_elf_header(0x3E))


def _no_watchdog(root: Path, fw: Path) -> None:
    (root / "etc/systemd/system.conf.d/60-numerek-watchdog.conf").unlink()


def _initramfs_without_fsck(root: Path, fw: Path) -> None:
    # What the chroot build made before FSTYPE=ext4: raspi-firmware's hook adds fsck.ext4, not fsck.
    (fw / "initrd.img-6.1.0-28-arm64").write_bytes(_initramfs(["init", "usr/sbin/fsck.ext4", "usr/sbin/fsck.vfat"]))


def _database_in_image(root: Path, fw: Path) -> None:
    (root / "var/lib/numerek/numerek.db").write_bytes(b"SQLite format 3\x00")


MISTAKES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "server-enabled": (_enable_server, "numerek-server.service installed, not enabled"),
    "journal-on-card": (_persistent_journal, "journal in RAM (Storage=volatile)"),
    "ssh-host-key": (_host_key, "no SSH host keys baked in"),
    "config-world-readable": (_readable_config, "/etc/numerek/numerek.toml is root:numerek 0640"),
    "setup-file-left": (_setup_left_on_card, "no setup file yet (one image for every card)"),
    "x86-programs": (_x86_programs, "programs are arm64"),
    "no-watchdog": (_no_watchdog, "hardware watchdog: RuntimeWatchdogSec=14s"),
    "database-in-image": (_database_in_image, "no SQLite database in the image"),
    "initramfs-without-fsck": (_initramfs_without_fsck, "the initramfs can check the root file system"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_card_with_a_mistake_fails_the_check_naming_it(tmp_path, mistake):
    spoil, named = MISTAKES[mistake]
    root, fw = _card(tmp_path)
    spoil(root, fw)
    done = _check(tmp_path, root, fw, OWNERS)
    assert done.returncode == 1, done.stdout
    failed = [ln for ln in done.stdout.splitlines() if ln.startswith("  FAIL")]
    assert len(failed) == 1 and named in failed[0], done.stdout
    assert "FAILED: 1 check(s)" in done.stdout


def test_a_config_owned_by_the_wrong_group_fails_the_check(tmp_path):
    root, fw = _card(tmp_path)
    done = _check(tmp_path, root, fw, {**OWNERS, "/etc/numerek/numerek.toml": (0, 0)})
    assert done.returncode == 1
    assert "  FAIL  /etc/numerek/numerek.toml is root:numerek 0640" in done.stdout, done.stdout
