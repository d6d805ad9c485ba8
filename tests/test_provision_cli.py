"""numerek-provision as an administrator uses it: files it writes, configs the roles accept, refusals."""

from __future__ import annotations

import grp
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from server.config import load_config as load_site_config
from server.provision import check_password, main
from tests.harness import ROOT, free_port, run_tool, write_config


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
    assert (counter.mqtt.host, counter.mqtt.username) == ("numerek-serwer.local", "counter-4")
    kiosk = load_kiosk(config_dir / "kiosk-wejscie.toml")
    assert kiosk.kiosk.id == "wejscie" and kiosk.mqtt.username == "kiosk-wejscie"
    display = load_display(config_dir / "display-pietro-1.toml")
    assert (display.display.id, display.display.zone, display.device_id) == ("pietro-1", "upstairs", "display-pietro-1")
    assert display.mqtt.username == "display-pietro-1" and len(display.mqtt.password or "") >= 20
    passwd = dict(line.split(":", 1) for line in (dirs[0] / "passwd").read_text().splitlines())
    assert check_password(kiosk.mqtt.password, passwd["kiosk-wejscie"])
    assert check_password(counter.mqtt.password, passwd["counter-4"])
    out = capsys.readouterr().out
    assert "kiosk-wejscie" in out and kiosk.mqtt.password not in out  # never on the terminal (or its scrollback)


def test_the_replicator_gets_an_account_file_numerek_replicate_accepts_for_its_branch_only(dirs, tmp_path, capsys):
    from server.replicate import load_account

    assert run(dirs, "init", "--host", "127.0.0.1", "--port", "1883") == 0
    assert run(dirs, "add", "replicator", "wola") == 0
    account = dirs[1] / "replicator-wola.toml"
    assert stat.S_IMODE(account.stat().st_mode) == 0o600  # as every device's file: it holds the password
    out = capsys.readouterr().out
    assert "--account /etc/numerek/replicator.toml" in out
    settings = load_account(account, "wola", "numerek")
    assert settings.username == "replicator-wola" and settings.password not in out
    passwd = dict(line.split(":", 1) for line in (dirs[0] / "passwd").read_text().splitlines())
    assert check_password(settings.password or "", passwd["replicator-wola"])
    assert "user replicator-wola\ntopic write numerek/replica/wola/events\n" in (dirs[0] / "acl").read_text()

    # Another branch's file is refused before the broker would refuse its batches.
    site = write_config(tmp_path / "office.toml", 1883, free_port())
    done = run_tool(
        "server.replicate", "--config", str(site), "--branch", "mokotow", "--account", str(account), timeout=60
    )
    assert done.returncode == 2
    assert "mqtt.username: is 'replicator-wola'; branch mokotow's is 'replicator-mokotow'" in done.stderr


def test_the_replicator_without_its_database_says_so_in_one_line_and_is_restarted(tmp_path):
    """Before the server's first start there is no database: one clear line, no traceback, and
    status 1, which systemd restarts (2 means a wrong config: RestartPreventExitStatus=2)."""
    site = write_config(tmp_path / "office.toml", 1883, free_port())
    missing = tmp_path / "not-yet.db"
    done = run_tool("server.replicate", "--config", str(site), "--branch", "wola", "--database", str(missing))
    assert done.returncode == 1
    assert (
        done.stderr == f"numerek-replicate: no database at {missing} (numerek-server creates it at its first start)\n"
    )
    assert not missing.exists()


def test_reissue_moves_the_replicator_to_tls_with_the_devices_keeping_its_password(dirs):
    from server.replicate import load_account

    assert run(dirs, "init", "--host", "numerek-serwer.local", "--port", "1883") == 0
    assert run(dirs, "add", "replicator", "wola") == 0
    account = dirs[1] / "replicator-wola.toml"
    before = load_account(account, "wola", "numerek")
    assert run(dirs, "init", "--port", "8883", "--tls-ca", "/etc/numerek/ca.crt") == 0
    assert run(dirs, "reissue", "--all") == 0
    after = load_account(account, "wola", "numerek")
    assert (after.port, after.tls_ca, after.password) == (8883, "/etc/numerek/ca.crt", before.password)
    assert stat.S_IMODE(account.stat().st_mode) == 0o600


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
    assert "topic read urzad2/counter/+/+" in (dirs[0] / "acl").read_text()


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
    code = main(
        [
            "--broker-dir",
            str(broker_dir),
            "--config-dir",
            str(config_dir),
            "--reload-command",
            "false",
            "add",
            "kiosk",
            "k1",
        ]
    )
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
    done = run_tool(f"{role}.cli", "--config", str(dirs[1] / f"{account}.toml"), "--check", timeout=120)
    assert done.returncode == 0, done.stderr
    assert shown in done.stdout


def _edit(path: Path, *pairs: tuple[str, str]) -> None:
    text = path.read_text()
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    path.write_text(text)


def test_replace_keeps_the_offices_printer_and_pin_settings(dirs, capsys):
    """A new password must not put the example's dummy printer and default pins back."""
    from counter.config import load_config as load_counter
    from kiosk.config import load_config as load_kiosk

    _, config_dir = dirs
    run(dirs, "add", "kiosk", "k1")
    run(dirs, "add", "counter", "7")
    kiosk_file, counter_file = config_dir / "kiosk-k1.toml", config_dir / "counter-7.toml"
    _edit(kiosk_file, ('type = "dummy"', 'type = "network"  # the TM-T20III by the door\nhost = "192.168.1.50"'))
    _edit(counter_file, ("next = 17", "next = 4"), ('kind = "lcd"', 'kind = "none"'))
    old_kiosk = load_kiosk(kiosk_file).mqtt.password

    assert run(dirs, "add", "kiosk", "k1", "--replace") == 0
    assert run(dirs, "add", "counter", "7", "--replace") == 0

    kiosk = load_kiosk(kiosk_file)
    assert (kiosk.printer.type, kiosk.printer.host) == ("network", "192.168.1.50")
    assert "# the TM-T20III by the door" in kiosk_file.read_text()
    assert kiosk.mqtt.password != old_kiosk and kiosk.mqtt.username == "kiosk-k1"
    counter = load_counter(counter_file)
    assert counter.counters[0].buttons.next == "GPIO4" and counter.counters[0].display.kind == "none"
    passwd = dict(line.split(":", 1) for line in (dirs[0] / "passwd").read_text().splitlines())
    assert check_password(kiosk.mqtt.password, passwd["kiosk-k1"])
    assert check_password(counter.mqtt.password, passwd["counter-7"])
    assert kiosk_file.read_text().count("from numerek-provision") == 1  # one heading, not one per run
    assert "settings kept from" in capsys.readouterr().out


def test_replace_from_the_devices_own_file_keeps_its_settings(tmp_path, dirs):
    """The office finished the config on the device; --from takes that copy, not the example."""
    from display.config import load_config as load_display

    run(dirs, "add", "display", "hall-1", "--zone", "hall")
    device_copy = tmp_path / "display-from-the-tv.toml"
    device_copy.write_text(
        (dirs[1] / "display-hall-1.toml").read_text().replace('office_name = ""', 'office_name = "USC Wola"')
    )
    (dirs[1] / "display-hall-1.toml").unlink()  # deleted after copying, as docs/deployment.md allows
    assert run(dirs, "add", "display", "hall-1", "--zone", "hall", "--replace", "--from", str(device_copy)) == 0
    display = load_display(dirs[1] / "display-hall-1.toml")
    assert display.display.office_name == "USC Wola" and display.display.zone == "hall"
    assert display.mqtt.username == "display-hall-1"


def test_replace_refuses_a_config_driving_a_counter_the_account_may_not_command(dirs, capsys):
    run(dirs, "add", "counter", "7")
    _edit(dirs[1] / "counter-7.toml", ('id = "7"', 'id = "8"'))
    before = snapshot(*dirs)
    assert run(dirs, "add", "counter", "7", "--replace") == 1
    assert "drives counter(s) 8, which counter-7 may not command" in capsys.readouterr().err
    assert snapshot(*dirs) == before


def test_two_counter_unit_gets_a_block_and_a_heading_for_each_counter(dirs):
    from counter.config import load_config as load_counter

    assert run(dirs, "add", "counter", "3", "4") == 0
    path = dirs[1] / "counter-3-4.toml"
    unit = load_counter(path)
    assert [c.id for c in unit.counters] == ["3", "4"] and unit.device == "counter-3-4"
    text = path.read_text()
    assert '-- counter 3\n[[counters]]\nid = "3"' in text and "-- counter 4 (same Pi)" in text
    assert "counter 1" not in text and "counter 2" not in text and "Stanowisko 1" not in text
    assert "add a [[counters]] block" not in text  # nothing is left to add by hand


def test_a_unit_for_more_counters_than_the_example_shows_says_which_block_to_add(dirs):
    from counter.config import load_config as load_counter

    assert run(dirs, "add", "counter", "5", "6", "9") == 0
    path = dirs[1] / "counter-5-6-9.toml"
    assert [c.id for c in load_counter(path).counters] == ["5", "6"]
    assert "may also command counter(s) 9: add a [[counters]] block" in path.read_text()
    assert run(dirs, "add", "counter", "1", "2", "3", "4", "5") == 1


def _installed_venv() -> str:
    """The venv install.sh creates, from its own variables (prefix=..., venv=$prefix/...)."""
    text = (ROOT / "systemd" / "install.sh").read_text()
    prefix = re.search(r"^prefix=(\S+)$", text, re.M).group(1)
    return re.search(r"^venv=(\S+)$", text, re.M).group(1).replace("$prefix", prefix)


@pytest.mark.parametrize(
    ("role", "args"), [("counter", ["4"]), ("kiosk", ["k1"]), ("display", ["hall-1", "--zone", "hall"])]
)
def test_check_command_in_the_device_config_works_as_install_sh_installs(dirs, role, args):
    """The heading's command: the installed program by full path (not on PATH), as the service user."""
    assert run(dirs, "add", role, *args) == 0
    account = f"{role}-{args[0]}"
    text = (dirs[1] / f"{account}.toml").read_text()
    commands = [line.removeprefix("#").strip() for line in text.splitlines() if "--check" in line]
    expected = f"sudo -u numerek {_installed_venv()}/bin/numerek-{role} --config /etc/numerek/{role}.toml --check"
    assert commands == [expected] * len(commands) and commands  # the example's relative one is replaced too
    argv = shlex.split(expected.replace(f"/etc/numerek/{role}.toml", str(dirs[1] / f"{account}.toml")))
    argv[3] = str(Path(sys.executable).parent / f"numerek-{role}")  # this checkout's install of the same program
    argv = argv[3:]  # no numerek user here: run as ourselves
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_deployment_doc_gives_the_check_commands_that_work_as_installed():
    doc = (ROOT / "docs" / "deployment.md").read_text()
    # command lines only: a log line quoting a check's result starts with its time stamp
    checks = re.findall(r"^(?!\[\d\d:\d\d:\d\d\]).*numerek-(?:counter|kiosk|display|server) .*--check.*$", doc, re.M)
    assert checks
    for line in checks:
        assert re.search(rf"sudo -u numerek {_installed_venv()}/bin/numerek-\w+ --config /etc/numerek/\S+", line), line


def test_deployment_doc_revokes_accounts_it_created():
    """The doc's provisioning examples: `revoke` names an account that `add` made (counter-3-4, not counter-4)."""
    from protocol.topics import device_name

    doc = (ROOT / "docs" / "deployment.md").read_text()
    made = {"server"}
    for role, rest in re.findall(r"numerek-provision add (\w+) ([^#\n]*)", doc):
        ids = [w for w in rest.split() if not w.startswith("-") and not w.startswith("<")]
        ids = ids[:1] if "--zone" in rest else ids
        if ids and role != "server":
            made.add(device_name(role, *ids))
    revoked = re.findall(r"numerek-provision revoke (\S+)", doc)
    assert revoked and set(revoked) <= made, (revoked, made)


def test_revoke_says_clearly_when_the_broker_is_out_of_reach(dirs, capsys):
    broker_dir, config_dir = dirs
    run(dirs, "add", "counter", "4")
    capsys.readouterr()
    code = main(
        [
            "--broker-dir",
            str(broker_dir),
            "--config-dir",
            str(config_dir),
            "--reload-command",
            "true",
            "--mqtt-port",
            str(free_port()),
            "--mqtt-wait",
            "1",
            "revoke",
            "counter-4",
        ]
    )
    assert code == 0  # the account is gone, which is what matters for security
    err = capsys.readouterr().err
    assert "counter-4's retained availability is still on the broker" in err
    assert "numerek-provision clear counter-4" in err
    acl = (broker_dir / "acl").read_text()
    assert "counter-4" not in acl and "user provision" not in acl  # no one-off clearing account left behind


def test_revoke_without_a_reload_says_the_availability_was_not_cleared(dirs, capsys):
    run(dirs, "add", "kiosk", "k1")
    capsys.readouterr()
    assert run(dirs, "revoke", "kiosk-k1") == 0
    assert "not cleared (broker not reloaded)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reissue"], "or give --all"),
        (["reissue", "counter-99"], "no account 'counter-99'"),
        (["reissue", "server"], "is not a device"),
        (["clear", "kiosk-k1"], "still has an account"),
        (["clear", "printer-1"], "is not a device name"),
    ],
)
def test_bad_reissue_or_clear_is_refused_and_changes_nothing(tmp_path, dirs, capsys, args, message):
    site = write_config(tmp_path / "office.toml", 1883, free_port())
    run(dirs, "add", "server", "--site-config", str(site))
    run(dirs, "add", "kiosk", "k1")
    before = snapshot(*dirs)
    assert run(dirs, *args) == 1
    assert message in capsys.readouterr().err
    assert snapshot(*dirs) == before


def test_reissue_refuses_when_a_devices_file_is_gone_and_changes_nothing(dirs, capsys):
    run(dirs, "add", "kiosk", "k1")
    run(dirs, "add", "counter", "4")
    (dirs[1] / "counter-4.toml").unlink()
    run(dirs, "init", "--port", "8883", "--tls-ca", "/etc/numerek/ca.crt")
    before = snapshot(*dirs)
    assert run(dirs, "reissue", "--all") == 1
    err = capsys.readouterr().err
    assert "no saved config for counter-4" in err and "sudo cat /etc/numerek/counter.toml" in err
    assert snapshot(*dirs) == before


def test_reissue_moves_every_device_kind_to_tls_keeping_settings_and_passwords(dirs, capsys):
    """docs/deployment.md, TLS step 3, for a display (zone), a two-counter unit, a kiosk and a monitor."""
    from counter.config import load_config as load_counter
    from display.config import load_config as load_display
    from kiosk.config import load_config as load_kiosk

    run(dirs, "init", "--host", "numerek-serwer.local", "--port", "1883")
    for args in (["counter", "3", "4"], ["display", "hall-1", "--zone", "hall"], ["kiosk", "k1"], ["monitor", "it"]):
        assert run(dirs, "add", *args) == 0
    d = dirs[1]
    _edit(d / "kiosk-k1.toml", ('type = "dummy"', 'type = "network"\nhost = "192.168.1.50"'))
    _edit(d / "display-hall-1.toml", ('office_name = ""', 'office_name = "USC Wola"'))
    _edit(d / "counter-3-4.toml", ("next = 20", "next = 8"))
    before = {n: tomllib.loads((d / f"{n}.toml").read_text()) for n in ("counter-3-4", "display-hall-1", "kiosk-k1")}
    passwd_before = (dirs[0] / "passwd").read_text()

    assert run(dirs, "init", "--port", "8883", "--tls-ca", "/etc/numerek/ca.crt") == 0
    assert run(dirs, "reissue", "--all") == 0
    assert "password kept" in capsys.readouterr().out

    counter = load_counter(d / "counter-3-4.toml")
    assert (counter.mqtt.port, counter.mqtt.tls_ca) == (8883, "/etc/numerek/ca.crt")
    assert [c.id for c in counter.counters] == ["3", "4"] and counter.counters[1].buttons.next == "GPIO8"
    assert counter.mqtt.password == before["counter-3-4"]["mqtt"]["password"]
    display = load_display(d / "display-hall-1.toml")
    assert (display.mqtt.port, display.mqtt.tls_ca, display.display.zone) == (8883, "/etc/numerek/ca.crt", "hall")
    assert display.display.office_name == "USC Wola"
    kiosk = load_kiosk(d / "kiosk-k1.toml")
    assert (kiosk.mqtt.port, kiosk.printer.type) == (8883, "network")
    assert tomllib.loads((d / "monitor-it.toml").read_text())["mqtt"]["port"] == 8883
    assert (dirs[0] / "passwd").read_text() == passwd_before  # every device keeps working until its file arrives
    for role, name in (("counter", "counter-3-4"), ("display", "display-hall-1"), ("kiosk", "kiosk-k1")):
        done = run_tool(f"{role}.cli", "--config", str(d / f"{name}.toml"), "--check", timeout=120)
        assert done.returncode == 0, done.stderr


def test_a_kiosks_qr_code_points_at_the_server_phones_can_reach(dirs):
    """The example's placeholder (numerek.local) would print dead QR codes: a provisioned
    kiosk gets the broker's host on the web port, or the address set with --public-url."""
    from kiosk.config import load_config as load_kiosk

    _, config_dir = dirs
    assert run(dirs, "init", "--host", "numerek-serwer.lan") == 0
    assert run(dirs, "add", "kiosk", "k1") == 0
    assert load_kiosk(config_dir / "kiosk-k1.toml").kiosk.public_url == "http://numerek-serwer.lan:8080"
    assert run(dirs, "init", "--public-url", "https://kolejka.starostwo.example/") == 0
    assert run(dirs, "add", "kiosk", "k2") == 0
    assert load_kiosk(config_dir / "kiosk-k2.toml").kiosk.public_url == "https://kolejka.starostwo.example"
    _edit(
        config_dir / "kiosk-k1.toml",
        ('public_url = "http://numerek-serwer.lan:8080"', 'public_url = "http://10.0.0.5:8080"'),
    )
    assert run(dirs, "add", "kiosk", "k1", "--replace") == 0
    assert load_kiosk(config_dir / "kiosk-k1.toml").kiosk.public_url == "http://10.0.0.5:8080"  # the office's own
    assert run(dirs, "init", "--public-url", "numerek-serwer") == 1  # refused, with a message


def test_reissue_gives_an_old_counter_file_the_common_mqtt_section_and_keeps_its_password(dirs, capsys):
    """Counter files once called [mqtt] [broker]; reissue renames it, keeping comments and the password."""
    from counter.config import load_config as load_counter

    run(dirs, "init", "--host", "numerek-serwer.local", "--port", "1883")
    assert run(dirs, "add", "counter", "4") == 0
    path = dirs[1] / "counter-4.toml"
    _edit(path, ("[mqtt]", "[broker]"))
    password = tomllib.loads(path.read_text())["broker"]["password"]
    assert run(dirs, "init", "--port", "8883", "--tls-ca", "/etc/numerek/ca.crt") == 0
    assert run(dirs, "reissue", "counter-4") == 0
    assert "password kept" in capsys.readouterr().out
    text = path.read_text()
    assert "[broker]" not in text and "# the server's broker (Mosquitto)" in text
    unit = load_counter(path)
    assert (unit.mqtt.port, unit.mqtt.password) == (8883, password)
