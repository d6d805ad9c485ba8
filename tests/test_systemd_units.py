"""The shipped systemd units: systemd's own checker, the hardening score, and what each role needs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from server.provision import DEFAULT_BROKER_DIR, DEFAULT_CONFIG_DIR
from tests.harness import ROOT

SYSTEMD = ROOT / "systemd"
ROLES = ("server", "kiosk", "display", "counter")
UNITS = {role: SYSTEMD / f"numerek-{role}.service" for role in ROLES}
INSTALLED_BIN = "/opt/numerek/venv/bin/"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")


def parse(path: Path) -> dict[str, list[str]]:
    """``Section.Key`` -> values in order (systemd allows a key several times)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


@pytest.fixture
def units_here(tmp_path) -> dict[str, Path]:
    """The units with /opt/numerek/venv/bin replaced by this venv's bin, where the same programs exist.

    systemd-analyze checks that ExecStart= points at an executable; everything else is unchanged.
    """
    bindir = Path(sys.executable).parent
    out = {}
    for role, unit in UNITS.items():
        assert (bindir / f"numerek-{role}").exists(), f"numerek-{role} is not installed in {bindir}"
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace(INSTALLED_BIN, f"{bindir}/"))
        out[role] = copy
    return out


@needs_analyze
def test_units_pass_systemd_analyze_verify_without_a_single_warning(units_here):
    done = subprocess.run(
        [ANALYZE, "verify", *map(str, units_here.values())], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "" and done.stdout.strip() == "", done.stderr + done.stdout


@needs_analyze
@pytest.mark.parametrize(("role", "limit"), [("server", 1.5), ("kiosk", 2.0), ("display", 2.0), ("counter", 2.0)])
def test_units_are_hardened(units_here, role, limit):
    """systemd's exposure score (0 = locked down, 10 = unprotected); "OK" in its words is below 2.0."""
    done = subprocess.run(
        [ANALYZE, "security", "--offline=yes", f"--threshold={int(limit * 10)}", str(units_here[role])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-1500:]


@pytest.mark.parametrize("role", ROLES)
def test_every_unit_restarts_on_failure_runs_as_numerek_and_logs_to_the_journal(role):
    u = parse(UNITS[role])
    assert u["Service.Restart"] == ["on-failure"]
    assert u["Service.User"] == ["numerek"] and u["Service.Group"] == ["numerek"]
    assert u["Service.StateDirectory"] == ["numerek"] and u["Service.ConfigurationDirectory"] == ["numerek"]
    assert u["Service.StandardOutput"] == ["journal"] and u["Service.StandardError"] == ["journal"]
    assert u["Service.SyslogIdentifier"] == [f"numerek-{role}"]
    for key, value in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("CapabilityBoundingSet", ""),
    ]:
        assert u[f"Service.{key}"] == [value], key
    config = "/etc/numerek/numerek.toml" if role == "server" else f"/etc/numerek/{role}.toml"
    (exec_start,) = u["Service.ExecStart"]
    assert exec_start.startswith(f"{INSTALLED_BIN}numerek-{role} ") and f"--config {config}" in exec_start


def test_server_keeps_its_database_in_the_state_directory():
    (exec_start,) = parse(UNITS["server"])["Service.ExecStart"]
    assert "--database /var/lib/numerek/numerek.db" in exec_start  # /etc is read-only to the service


def test_only_the_server_claims_a_watchdog():
    """WatchdogSec= on a program that never pings would restart it every interval."""
    server = parse(UNITS["server"])
    assert server["Service.Type"] == ["notify"] and server["Service.WatchdogSec"] == ["30"]
    for role in ("kiosk", "display", "counter"):
        u = parse(UNITS[role])
        assert "Service.WatchdogSec" not in u and u["Service.Type"] == ["simple"], role


@pytest.mark.parametrize(
    ("role", "groups", "devices"),
    [
        ("counter", {"gpio", "i2c"}, {"char-gpiochip rw", "/dev/gpiomem rw", "char-i2c rw"}),
        ("kiosk", {"video", "render", "input", "lp", "dialout"}, {"char-drm rw", "char-input r", "char-usb_device rw"}),
        ("display", {"video", "render", "audio"}, {"char-drm rw", "char-alsa rw"}),
    ],
)
def test_device_units_reach_their_hardware_and_nothing_else(role, groups, devices):
    u = parse(UNITS[role])
    assert set(u["Service.SupplementaryGroups"][0].split()) == groups
    assert u["Service.DevicePolicy"] == ["closed"]
    assert devices <= set(u["Service.DeviceAllow"])
    assert "Service.PrivateDevices" not in u


def test_server_sees_no_hardware():
    u = parse(UNITS["server"])
    assert u["Service.PrivateDevices"] == ["yes"] and "Service.SupplementaryGroups" not in u


@pytest.mark.parametrize("role", ("kiosk", "display"))
def test_screen_units_run_kivy_on_kms_with_a_writable_home(role):
    u = parse(UNITS[role])
    env = dict(e.split("=", 1) for e in u["Service.Environment"])
    assert env["SDL_VIDEODRIVER"] == "kmsdrm" and env["KIVY_WINDOW"] == "sdl2"
    assert env["KIVY_HOME"].startswith("/var/lib/numerek/")  # the only writable place (StateDirectory)
    assert u["Unit.Conflicts"] == ["getty@tty1.service"]


def test_mosquitto_config_reads_the_files_numerek_provision_writes():
    conf = parse_conf(SYSTEMD / "mosquitto" / "numerek.conf")
    assert conf["password_file"] == [str(DEFAULT_BROKER_DIR / "passwd")]
    assert conf["acl_file"] == [str(DEFAULT_BROKER_DIR / "acl")]
    assert conf["allow_anonymous"] == ["false"] and conf["per_listener_settings"] == ["false"]
    assert str(DEFAULT_CONFIG_DIR).startswith("/etc/numerek/")


def parse_conf(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key, []).append(value.strip())
    return out


def test_install_script_is_valid_bash():
    for script in ("install.sh", "make-tls-certs.sh"):
        path = SYSTEMD / script
        assert os.access(path, os.X_OK), f"{script} is not executable"
        subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)


def _packages(role: str) -> set[str]:
    """The Debian packages install.sh installs for ``role`` (its arrays, with ${screen[@]} expanded)."""
    text = (SYSTEMD / "install.sh").read_text()
    arrays = {m.group(1): m.group(2) for m in re.finditer(r"^(\w+)=\(([^)]*)\)", text, re.M)}
    line = re.search(rf"^\s*{role}\)\s+extra=\(([^)]*)\)", text, re.M)
    assert line, f"no package list for {role} in install.sh"
    words = line.group(1).replace('"${screen[@]}"', arrays.get("screen", "")).split()
    return set(words) | set(arrays["common"].split())


# What Kivy's SDL2 opens on KMS/DRM -> the Debian (Bookworm) package that provides it.
KMS_LIBRARIES = {
    "libEGL.so.1": "libegl1",
    "libGLESv2.so.2": "libgles2",
    "libgbm.so.1": "libgbm1",
    "libdrm.so.2": "libdrm2",
}
# Loaded in turn by those: Mesa's EGL vendor for libglvnd, and the GPU drivers (vc4/v3d).
MESA = {"libegl-mesa0", "libgl1-mesa-dri"}


def _kivy_sdl2() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("kivy")
    if spec is None or spec.origin is None:
        return None
    found = sorted((Path(spec.origin).parent.parent / "Kivy.libs").glob("libSDL2-2*.so*"))
    return found[0] if found else None


@pytest.mark.parametrize("role", ("kiosk", "display"))
def test_screen_roles_install_what_kivy_needs_to_start_on_kms_without_x(role):
    sdl2 = _kivy_sdl2()
    if sdl2 is not None:  # the wheel's own SDL2: keep the table above honest
        data = sdl2.read_bytes()
        assert b"KMSDRM" in data, "Kivy's SDL2 has no KMS/DRM video driver"
        for soname in KMS_LIBRARIES:
            assert soname.encode() in data, f"{sdl2.name} no longer loads {soname}: update KMS_LIBRARIES"
    packages = _packages(role)
    needed = set(KMS_LIBRARIES.values()) | MESA | {"libgl1", "libmtdev1", "fonts-dejavu-core"}
    assert needed <= packages, f"install.sh {role} misses {sorted(needed - packages)}"


def test_display_role_installs_what_speaks_plays_and_converts_its_chime():
    """espeak-ng speaks, aplay (alsa-utils) plays, sox converts a chime that is not mono
    16-bit 22050 Hz (docs/display.md promises it; without sox such a chime is refused by
    ``--check`` and replaced by the built-in one at run time)."""
    packages = _packages("display")
    assert {"espeak-ng", "alsa-utils", "sox"} <= packages, (
        f"install.sh display misses {sorted({'espeak-ng', 'alsa-utils', 'sox'} - packages)}"
    )
