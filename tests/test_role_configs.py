"""One config loader, one error type, one ``--check`` for every role (protocol/config.py, protocol/bootstrap.py).

An installer who gets a path wrong, or leaves a typo in a file, must read the same kind of
one-line message from every program: the program, the file, the field, the problem. Never a
traceback, always exit status 2 (systemd does not restart a unit for a config error).
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from protocol import config
from protocol.config import ConfigError
from tests.harness import ROOT, run_tool

ROLES = {
    # role: (a minimal valid file, a wrong type in it and the field that names it)
    "server": (
        (ROOT / "server" / "examples" / "county_office.toml").read_text(encoding="utf-8"),
        ("daily_limit = 80", 'daily_limit = "eighty"'),
        "services.4.daily_limit",
    ),
    "kiosk": ('[kiosk]\nid = "k1"\npublic_url = "http://x"\n', ('id = "k1"', "id = 1"), "kiosk.id"),
    "counter": (
        '[[counters]]\nid = "1"\n[counters.display]\nkind = "memory"\n',
        ('id = "1"', "id = 1"),
        "counters.0.id",
    ),
    "display": ('[display]\nzone = "hall"\n', ('zone = "hall"', "zone = 7"), "display.zone"),
}


def with_mqtt(text: str, **values: object) -> str:
    """``text`` with these keys set in its ``[mqtt]`` table (made if missing)."""
    import tomlkit

    doc = tomlkit.parse(text)
    if "mqtt" not in doc:
        doc["mqtt"] = tomlkit.table()
    for key, value in values.items():
        doc["mqtt"][key] = value  # type: ignore[index]
    return tomlkit.dumps(doc)


def check(role: str, path: Path) -> subprocess.CompletedProcess:
    return run_tool(f"{role}.cli", "--config", str(path), "--check", timeout=120)


def _one_clear_line(done: subprocess.CompletedProcess, role: str, path: Path, *words: str) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith(f"numerek-{role}: {path}: "), line
    for word in words:
        assert word in line, line
    return line


@pytest.mark.parametrize("role", ROLES)
def test_a_directory_given_as_the_config_is_one_clear_line_in_every_role(role, tmp_path):
    line = _one_clear_line(check(role, tmp_path), role, tmp_path)
    assert line == f"numerek-{role}: {tmp_path}: is a directory, not a config file"


@pytest.mark.parametrize("role", ROLES)
def test_a_missing_file_is_one_clear_line_in_every_role(role, tmp_path):
    missing = tmp_path / f"{role}.toml"
    assert _one_clear_line(check(role, missing), role, missing) == f"numerek-{role}: {missing}: no such file"


@pytest.mark.parametrize("role", ROLES)
def test_bad_toml_is_one_clear_line_with_its_position_in_every_role(role, tmp_path):
    path = tmp_path / f"{role}.toml"
    path.write_text("[mqtt]\nport = \n", encoding="utf-8")
    _one_clear_line(check(role, path), role, path, "not valid TOML", "line 2")


@pytest.mark.parametrize("role", ROLES)
def test_a_wrong_type_names_the_field_in_every_role(role, tmp_path):
    text, (good, bad), field = ROLES[role]
    path = tmp_path / f"{role}.toml"
    assert good in text
    path.write_text(text.replace(good, bad, 1), encoding="utf-8")
    _one_clear_line(check(role, path), role, path, f"{field}: ")


@pytest.mark.parametrize("role", ROLES)
def test_a_good_file_passes_the_check_in_every_role_and_the_mqtt_section_is_common(role, tmp_path):
    path = tmp_path / f"{role}.toml"
    path.write_text(with_mqtt(ROLES[role][0], keepalive=7, port=18883), encoding="utf-8")
    done = check(role, path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{path}: OK — ")
    if role != "server":
        assert "broker 127.0.0.1:18883" in done.stdout


@pytest.mark.parametrize("role", ROLES)
def test_keepalive_out_of_range_is_refused_in_every_role(role, tmp_path):
    path = tmp_path / f"{role}.toml"
    path.write_text(with_mqtt(ROLES[role][0], keepalive=1), encoding="utf-8")
    _one_clear_line(check(role, path), role, path, "mqtt.keepalive: ")


def test_several_problems_are_one_line_each_naming_the_file(tmp_path):
    path = tmp_path / "kiosk.toml"
    path.write_text('[kiosk]\nid = "k 1"\npublic_url = "x"\n[mqtt]\nport = 0\n', encoding="utf-8")
    done = check("kiosk", path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 3, lines
    assert {line.split(": ")[2] for line in lines} == {"kiosk.id", "kiosk.public_url", "mqtt.port"}
    assert all(line.startswith(f"numerek-kiosk: {path}: ") for line in lines)


def test_an_unreadable_or_binary_file_is_a_config_error(tmp_path):
    binary = tmp_path / "x.toml"
    binary.write_bytes(b"\xff\xfe[mqtt]")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        config.read_toml(binary)


def test_a_validator_message_is_shown_without_pydantics_prefix(tmp_path):
    path = tmp_path / "counter.toml"
    path.write_text('[[counters]]\nid = "1"\n[[counters.feedback]]\npin = 5\nrating = 1\n', encoding="utf-8")
    from counter.config import load_config

    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: counters.0: feedback needs 3 to 5 buttons, not 1"


def test_the_counters_old_broker_section_is_still_read_with_a_deprecation_line(tmp_path, caplog):
    from counter.config import load_config

    path = tmp_path / "counter.toml"
    path.write_text('[broker]\nport = 1884\nkeepalive = 4\n\n[[counters]]\nid = "1"\n', encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        cfg = load_config(path)
    assert (cfg.mqtt.port, cfg.mqtt.keepalive) == (1884, 4)
    assert any(
        "[broker] is the old name of [mqtt]" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records
    )
    path.write_text('[broker]\nport = "x"\n\n[[counters]]\nid = "1"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broker\.port: "):  # named as the file spells it
        load_config(path)
    path.write_text('[broker]\nport = 1884\n[mqtt]\nport = 1885\n\n[[counters]]\nid = "1"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="keep one section, \\[mqtt\\]"):
        load_config(path)


def test_every_role_and_the_server_have_one_config_error_type():
    import counter.config
    import display.config
    import kiosk.config
    import server.config

    for module in (counter.config, display.config, kiosk.config, server.config):
        assert module.ConfigError is ConfigError, module.__name__


def test_every_shipped_example_uses_the_mqtt_section():
    for example in [*ROOT.glob("*/examples/*.toml")]:
        text = example.read_text(encoding="utf-8")
        assert "\n[broker]" not in text, example
