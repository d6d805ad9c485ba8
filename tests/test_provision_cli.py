"""numerek-provision as an administrator uses it: files it writes, configs the roles accept, refusals."""

from __future__ import annotations

import grp
import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from server.config import load_config as load_site_config
from server.provision import check_password, main
from tests.harness import ROOT, free_port, write_config


@pytest.fixture
def dirs(tmp_path) -> tuple[Path, Path]:
    return tmp_path / "mosquitto", tmp_path / "devices"


def run(dirs: tuple[Path, Path], *args: str) -> int:
    broker_dir, config_dir = dirs
    return main(["--broker-dir", str(broker_dir), "--config-dir", str(config_dir), "--no-reload", *args])


def snapshot(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for f in folders if f.exists() for p in sorted(f.rglob("*")) if p.is_file()}


def test_password_hashes_are_in_mosquitto_passwd_format(tmp_path, dirs):
    """Our PBKDF2-SHA512 lines and mosquitto_passwd's verify the same way."""
    exe = shutil.which("mosquitto_passwd")
    if exe is None:
        pytest.skip("mosquitto_passwd is not installed (apt-get install mosquitto)")
    pw = tmp_path / "pw"
    subprocess.run([exe, "-c", "-b", str(pw), "alice", "zażółć-gęślą"], check=True)
    hashed = pw.read_text().strip().split(":", 1)[1]
    assert check_password("zażółć-gęślą", hashed)
    assert not check_password("zażółć-gęśla", hashed)


def test_each_role_gets_a_config_its_own_program_accepts(dirs, capsys):
    from counter.config import load_config as load_counter
    from display.config import load_config as load_display
    from kiosk.config import load_config as load_kiosk

    assert run(dirs, "init", "--host", "numerek-serwer.local", "--port", "1883") == 0
    assert run(dirs, "add", "counter", "4") == 0
    assert run(dirs, "add", "kiosk", "wejscie") == 0
    assert run(dirs, "add", "display", "pietro-1", "--zone", "upstairs") == 0
    _, config_dir = dirs
    counter = load_counter(config_dir / "counter-4.toml")
    assert [c.id for c in counter.counters] == ["4"] and counter.device == "counter-4"
    assert (counter.broker.host, counter.broker.username) == ("numerek-serwer.local", "counter-4")
    kiosk = load_kiosk(config_dir / "kiosk-wejscie.toml")
    assert kiosk.kiosk.id == "wejscie" and kiosk.mqtt.username == "kiosk-wejscie"
    display = load_display(config_dir / "display-pietro-1.toml")
    assert (display.display.id, display.display.zone, display.device_id) == ("pietro-1", "upstairs", "display-pietro-1")
    assert display.mqtt.username == "display-pietro-1" and len(display.mqtt.password or "") >= 20
    passwd = dict(line.split(":", 1) for line in (dirs[0] / "passwd").read_text().splitlines())
    assert check_password(kiosk.mqtt.password, passwd["kiosk-wejscie"])
    assert check_password(counter.broker.password, passwd["counter-4"])
    out = capsys.readouterr().out
    assert "kiosk-wejscie" in out and kiosk.mqtt.password not in out  # never on the terminal (or its scrollback)


def test_the_example_comments_survive_in_the_device_config(dirs):
    run(dirs, "add", "counter", "7")
    text = (dirs[1] / "counter-7.toml").read_text()
    assert "# the server's broker (Mosquitto)" in text  # the comment on the host line is kept
    assert "[counters.buttons]" in text and "next = 17" in text


def test_one_counter_pi_for_two_counters_may_command_both(dirs):
    from counter.config import load_config as load_counter

    assert run(dirs, "add", "counter", "1", "2") == 0
    acl = (dirs[0] / "acl").read_text()
    assert "user counter-1-2" in acl
    assert "topic write numerek/counter/1/command" in acl and "topic write numerek/counter/2/command" in acl
    assert load_counter(dirs[1] / "counter-1-2.toml").device == "counter-1-2"


def test_server_account_goes_into_the_site_config_which_still_loads(tmp_path, dirs):
    site = write_config(tmp_path / "office.toml", 1883, free_port())
    site.write_text(site.read_text().replace("[mqtt]", "# nasz broker\n[mqtt]"))
    site.chmod(0o644)
    assert run(dirs, "add", "server", "--site-config", str(site)) == 0
    cfg = load_site_config(site)
    assert cfg.mqtt.username == "server" and len(cfg.mqtt.password or "") >= 20
    assert "# nasz broker" in site.read_text() and len(cfg.services) == 3
    assert stat.S_IMODE(site.stat().st_mode) & 0o007 == 0  # no longer world-readable
    passwd = dict(line.split(":", 1) for line in (dirs[0] / "passwd").read_text().splitlines())
    assert check_password(cfg.mqtt.password, passwd["server"])


def test_broker_files_are_private(dirs):
    run(dirs, "add", "kiosk", "k1")
    broker_dir, config_dir = dirs
    assert stat.S_IMODE((broker_dir / "devices.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((config_dir / "kiosk-k1.toml").stat().st_mode) == 0o600
    for name in ("passwd", "acl"):
        st = (broker_dir / name).stat()
        assert stat.S_IMODE(st.st_mode) == 0o640
        if os.geteuid() == 0 and _group("mosquitto") is not None:
            assert st.st_gid == _group("mosquitto")  # Mosquitto runs as its own user and reads them by group


def _group(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def test_replace_gives_a_new_password_and_the_old_one_stops_working(dirs):
    run(dirs, "add", "kiosk", "k1")
    old = tomllib.loads((dirs[1] / "kiosk-k1.toml").read_text())["mqtt"]["password"]
    assert run(dirs, "add", "kiosk", "k1", "--replace") == 0
    new = tomllib.loads((dirs[1] / "kiosk-k1.toml").read_text())["mqtt"]["password"]
    hashed = dict(line.split(":", 1) for line in (dirs[0] / "passwd").read_text().splitlines())["kiosk-k1"]
    assert check_password(new, hashed) and not check_password(old, hashed)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "counter", "a/b"], "not valid"),
        (["add", "counter", "#"], "not valid"),
        (["add", "kiosk"], "needs the device id"),
        (["add", "kiosk", "k1", "k2"], "one kiosk per account"),
        (["add", "display", "hall-2"], "needs --zone"),
        (["add", "display", "hall-2", "--zone", "hall/+"], "not valid"),
        (["add", "kiosk", "k9", "--zone", "hall"], "only for displays"),
        (["add", "counter", "1", "1"], "repeated"),
        (["add", "kiosk", "k1"], "already exists"),
        (["add", "counter", "x" * 40], "not valid"),
        (["revoke", "counter-99"], "no account 'counter-99'"),
        (["init", "--topic-base", "Numerek/Office"], "not valid"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_changes_nothing(dirs, capsys, args, message):
    run(dirs, "add", "kiosk", "k1")
    before = snapshot(*dirs)
    assert run(dirs, *args) == 1
    assert message in capsys.readouterr().err
    assert snapshot(*dirs) == before


def test_server_account_refused_when_topic_bases_differ(tmp_path, dirs, capsys):
    site = write_config(tmp_path / "office.toml", 1883, free_port())
    site.write_text(site.read_text().replace("[mqtt]", '[mqtt]\ntopic_base = "urzad2"'))
    before = site.read_bytes()
    assert run(dirs, "add", "server", "--site-config", str(site)) == 1
    assert "topic base 'urzad2'" in capsys.readouterr().err
    assert site.read_bytes() == before and not (dirs[0] / "passwd").exists()
    assert run(dirs, "init", "--topic-base", "urzad2") == 0
    assert run(dirs, "add", "server", "--site-config", str(site)) == 0
    assert "topic readwrite urzad2/counter/+/+" in (dirs[0] / "acl").read_text()


def test_site_config_with_an_inline_mqtt_table_is_refused_not_mangled(tmp_path, dirs, capsys):
    site = write_config(tmp_path / "office.toml", 1883, free_port())
    text = site.read_text().replace('[mqtt]\nhost = "127.0.0.1"\nport = 1883\n', "")
    site.write_text('mqtt = { host = "127.0.0.1" }\n' + text)
    before = site.read_bytes()
    assert run(dirs, "add", "server", "--site-config", str(site)) == 1
    assert "could not set [mqtt] keys" in capsys.readouterr().err
    assert site.read_bytes() == before


def test_revoke_removes_the_account_everywhere(dirs):
    run(dirs, "add", "counter", "4")
    run(dirs, "add", "counter", "5")
    assert run(dirs, "revoke", "counter-4") == 0
    broker_dir, config_dir = dirs
    assert "counter-4" not in (broker_dir / "passwd").read_text()
    assert "counter-4" not in (broker_dir / "acl").read_text()
    assert not (config_dir / "counter-4.toml").exists()
    assert "user counter-5" in (broker_dir / "acl").read_text()


def test_list_shows_every_account(dirs, capsys):
    run(dirs, "add", "counter", "4")
    run(dirs, "add", "display", "hall-1", "--zone", "hall")
    capsys.readouterr()
    assert run(dirs, "list") == 0
    out = capsys.readouterr().out
    assert "counter-4" in out and "display-hall-1" in out and "hall" in out


def test_a_failed_broker_reload_is_reported(dirs, capsys):
    broker_dir, config_dir = dirs
    code = main(["--broker-dir", str(broker_dir), "--config-dir", str(config_dir), "--reload-command", "false",
                 "add", "kiosk", "k1"])  # fmt: skip
    assert code == 1
    assert "files written, but 'false' failed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "account", "shown"),
    [
        (["counter", "4"], "counter-4", "counters 4"),
        (["kiosk", "k1"], "kiosk-k1", "kiosk k1"),
        (["display", "hall-1", "--zone", "hall"], "display-hall-1", "display-hall-1"),
    ],
)
def test_device_config_passes_the_roles_own_check_command(dirs, args, account, shown):
    """The step docs/deployment.md tells the installer to run on the device: numerek-<role> --check."""
    assert run(dirs, "add", *args) == 0
    role = args[0]
    done = subprocess.run(
        [sys.executable, "-m", f"{role}.cli", "--config", str(dirs[1] / f"{account}.toml"), "--check"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert shown in done.stdout
