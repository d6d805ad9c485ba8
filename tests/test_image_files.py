"""What the Raspberry Pi image ships besides Numerek itself: its units and config files.

The image is built by deploy/image/build-image.sh (slow: deploy/image/check-image.sh
checks a built image); these are the checks that need no image: systemd's own verifier on
the units, and the settings that keep the SD card alive and the board watched.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness import ROOT

FILES = ROOT / "deploy" / "image" / "files"
FIRSTBOOT = FILES / "etc/systemd/system/numerek-firstboot.service"
ANALYZE = shutil.which("systemd-analyze")


def ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_the_first_boot_unit_passes_systemd_analyze_verify(tmp_path):
    exe = tmp_path / "numerek-firstboot"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    unit = tmp_path / FIRSTBOOT.name
    unit.write_text(FIRSTBOOT.read_text().replace("/usr/local/sbin/numerek-firstboot", str(exe)))
    done = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    # Units the image has but this machine may not (avahi, ssh, mosquitto) are only named in ordering.
    noise = re.compile(r"(avahi-daemon|ssh|mosquitto)\.service|Unit .* not found|Cannot add dependency")
    problems = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip() and not noise.search(ln)]
    assert done.returncode == 0 and not problems, done.stderr


def test_the_first_boot_runs_before_any_role_and_only_while_a_setup_file_is_there():
    unit = FIRSTBOOT.read_text()
    assert "ConditionPathExists=/boot/firmware/numerek-setup.toml" in unit
    before = " ".join(re.findall(r"^Before=(.*)$", unit, re.M)).split()
    for service in ("numerek-server", "numerek-kiosk", "numerek-display", "numerek-counter", "mosquitto"):
        assert f"{service}.service" in before
    # The host name is set before DHCP and mDNS announce it.
    assert {"network-pre.target", "avahi-daemon.service"} <= set(before)
    assert "StandardOutput=journal+console" in unit  # a refusal is seen on the Pi's screen


def test_the_journal_stays_in_ram_and_is_capped():
    journal = ini(FILES / "etc/systemd/journald.conf.d/60-numerek.conf")["Journal"]
    assert journal["Storage"] == "volatile"
    assert re.fullmatch(r"\d+M", journal["RuntimeMaxUse"]) and int(journal["RuntimeMaxUse"][:-1]) <= 64
    assert re.fullmatch(r"\d+M", journal["SystemMaxUse"])  # if an office switches to persistent


def test_the_hardware_watchdog_is_on_within_what_the_bcm2835_can_count():
    manager = ini(FILES / "etc/systemd/system.conf.d/60-numerek-watchdog.conf")["Manager"]
    seconds = int(manager["RuntimeWatchdogSec"].removesuffix("s"))
    assert 0 < seconds < 16  # the BCM2835 watchdog's limit is about 15 s
    assert manager["RebootWatchdogSec"]


def test_ssh_makes_each_cards_host_keys_before_sshd_checks_its_config():
    drop_in = (FILES / "etc/systemd/system/ssh.service.d/60-numerek-host-keys.conf").read_text()
    pre = re.findall(r"^ExecStartPre=(.*)$", drop_in, re.M)
    assert pre == ["", "/usr/bin/ssh-keygen -A", "/usr/sbin/sshd -t"]  # reset, then keys, then Debian's test
    sshd = (FILES / "etc/ssh/sshd_config.d/60-numerek.conf").read_text()
    assert re.search(r"^PasswordAuthentication no$", sshd, re.M)


def test_the_image_scripts_are_valid_bash_and_executable():
    for script in (
        "deploy/arm64-check.sh",
        "deploy/arm64/update-check.sh",
        "deploy/image/build-image.sh",
        "deploy/image/check-image.sh",
        "deploy/image/boot-qemu.sh",
    ):
        path = ROOT / script
        assert os.access(path, os.X_OK), f"{script} is not executable"
        subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)
    subprocess.run(["bash", "-n", str(ROOT / "deploy" / "lib.sh")], check=True, timeout=30)
    assert os.access(ROOT / "deploy" / "numerek-release", os.X_OK)


def test_the_image_keeps_the_sd_card_quiet_and_bakes_in_no_secret():
    """The build script's own lines: fstab, per-card identity, no server accounts."""
    build = (ROOT / "deploy" / "image" / "build-image.sh").read_text()
    fstab = re.search(r"> \"\$root/etc/fstab\" <<'EOF'\n(.*?)\nEOF", build, re.S)
    assert fstab, "build-image.sh writes no fstab"
    lines = [ln.split() for ln in fstab.group(1).splitlines() if ln and not ln.startswith("#")]
    mounts = {fields[1]: fields for fields in lines}
    assert mounts["/"][0] == "LABEL=RASPIROOT" and "noatime" in mounts["/"][3]
    assert mounts["/boot/firmware"][0] == "LABEL=RASPIFIRM"
    assert mounts["/tmp"][2] == "tmpfs"
    assert (
        ': > "$root/etc/machine-id"' in build
        and 'rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*' in build
    )
    assert "NUMEREK_IMAGE=1" in build  # install.sh then leaves the broker accounts to the first boot
    install = (ROOT / "systemd" / "install.sh").read_text()
    assert re.search(r'if \[ "\$\{NUMEREK_IMAGE:-0\}" = 1 \]; then\n.*\n.*\n.*echo "image build', install)


needs_image_tools = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("sfdisk", "mkfs.vfat", "mcopy", "mkfs.ext4", "debugfs")),
    reason="fdisk, dosfstools, mtools or e2fsprogs missing",
)


@needs_image_tools
def test_the_image_is_assembled_from_folders_with_labelled_partitions_owners_and_modes(tmp_path):
    """deploy/image/assemble.sh on a tiny root: what a Pi's firmware and fstab look for is there."""
    root, firmware = tmp_path / "root", tmp_path / "firmware"
    (root / "etc/numerek").mkdir(parents=True)
    firmware.mkdir()
    (firmware / "config.txt").write_text("arm_64bit=1\n")
    (firmware / "numerek-setup.example.toml").write_text('role = "kiosk"\n')
    secret = root / "etc/numerek/kiosk.toml"
    secret.write_text("[mqtt]\n")
    os.chown(root / "etc/numerek", 0, 4242)
    (root / "etc/numerek").chmod(0o750)
    os.chown(secret, 0, 4242)
    secret.chmod(0o640)
    (root / "etc/localtime").symlink_to("/usr/share/zoneinfo/Europe/Warsaw")
    img = tmp_path / "test.img"
    script = f'. "{ROOT}/deploy/image/assemble.sh" && assemble_image "{root}" "{firmware}" "{img}" 256'
    subprocess.run(["bash", "-c", script], check=True, timeout=300)

    table = subprocess.run(["sfdisk", "-d", str(img)], capture_output=True, text=True, check=True).stdout
    starts = [int(m) for m in re.findall(r"start=\s*(\d+)", table)]
    assert "type=c" in table and "type=83" in table and len(starts) == 2
    fat = f"{img}@@{starts[0] * 512}"
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    label = subprocess.run(["mlabel", "-s", "-i", fat, "::"], capture_output=True, text=True, env=env).stdout
    assert "RASPIFIRM" in label
    listed = subprocess.run(["mdir", "-b", "-i", fat, "::"], capture_output=True, text=True, env=env).stdout
    assert "::/config.txt" in listed and "::/numerek-setup.example.toml" in listed

    rootfs = tmp_path / "root.part"
    with open(img, "rb") as src, open(rootfs, "wb") as dst:
        src.seek(starts[1] * 512)
        shutil.copyfileobj(src, dst)

    def debugfs(request: str) -> str:
        done = subprocess.run(["debugfs", "-R", request, str(rootfs)], capture_output=True, text=True, timeout=60)
        return done.stdout

    assert "Filesystem volume name:   RASPIROOT" in debugfs("stats")
    inode = debugfs("stat /etc/numerek/kiosk.toml")
    assert re.search(r"Mode:\s+0640", inode) and re.search(r"User:\s+0\s+Group:\s+4242", inode), inode
    assert re.search(r"Mode:\s+0750", debugfs("stat /etc/numerek"))
    assert 'Fast link dest: "/usr/share/zoneinfo/Europe/Warsaw"' in debugfs("stat /etc/localtime")


def test_the_image_initramfs_can_check_the_root_file_system_after_a_power_cut():
    """A chroot build cannot probe the root's type, so initramfs-tools left fsck out and the
    root (mounted rw by cmdline.txt) was never checked; the build names the type before the
    kernel (and with it the initramfs) is installed."""
    build = (ROOT / "deploy" / "image" / "build-image.sh").read_text()
    conf = build.index('echo FSTYPE=ext4 > "$root/etc/initramfs-tools/conf.d/60-numerek-fsck.conf"')
    assert conf < build.index("linux-image-arm64 raspi-firmware")


def test_the_first_boot_units_documentation_is_shipped_with_the_release():
    """Documentation=file:///opt/numerek/current/share/... is the repo's deploy/ copied into the
    release (deploy/numerek-release), so `systemctl help numerek-firstboot` finds the file."""
    docs = re.findall(r"^Documentation=file:///opt/numerek/current/share/(\S+)$", FIRSTBOOT.read_text(), re.M)
    assert docs and all((ROOT / path).is_file() for path in docs), docs
