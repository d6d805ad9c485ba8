"""The site config: the example loads; mistakes are reported with the field's path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from server.config import EXAMPLE_CONFIG, ConfigError, load_config, parse_config
from tests.engine_support import OFFICE
from tests.harness import ROOT


def test_example_county_office_config_is_valid():
    cfg = load_config(EXAMPLE_CONFIG)
    assert cfg.office.name.startswith("Starostwo")
    assert {s.prefix for s in cfg.services} == {"A", "B", "C", "K", "P"}
    assert all(c.services for c in cfg.counters)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (('hours = { mon = "08:00-16:00"', 'hours = { mon = "16:00-08:00"'), "services.0.hours: mon:"),
        (('hours = { mon = "08:00-16:00"', 'hours = { pon = "08:00-16:00"'), "services.0.hours"),
        (("daily_limit = 50", "daily_limit = 0"), "services.0.daily_limit"),
        (('prefix = "A"', 'prefix = "a1"'), "services.0.prefix"),
        (('timezone = "Europe/Warsaw"', 'timezone = "Europe/Krakow"'), "office.timezone"),
        (('services = ["rej", "pj"]', 'services = ["rej", "nope"]'), "serves unknown service 'nope'"),
        (("target_wait_min = 20", "target_wait_mins = 20"), "services.0.target_wait_mins"),
        (('timezone = "Europe/Warsaw"', 'timezone = "Europe/Warsaw"\nrecall_guard_s = 300'), "office.recall_guard_s"),
        (('timezone = "Europe/Warsaw"', 'timezone = "Europe/Warsaw"\nrating_window_s = 0'), "office.rating_window_s"),
    ],
)
def test_bad_field_is_named_in_the_error(change, field):
    text = OFFICE.replace(*change, 1)
    assert text != OFFICE
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert field in str(err.value)


def test_not_toml_is_a_clear_error():
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[office\nname=")


def test_check_command_reports_ok_and_errors(tmp_path):
    ok = subprocess.run(
        [sys.executable, "-m", "server.cli", "--config", str(EXAMPLE_CONFIG), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert ok.returncode == 0 and "5 services, 7 counters" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(OFFICE.replace("daily_limit = 50", "daily_limit = -3"))
    res = subprocess.run(
        [sys.executable, "-m", "server.cli", "--config", str(bad), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert res.returncode == 2 and "services.0.daily_limit" in res.stderr


def test_24_00_closing_means_open_until_midnight():
    from datetime import time

    text = OFFICE.replace('mon = "08:00-16:00"', 'mon = "00:00-24:00"', 1)
    hours = parse_config(text).services[0].hours["mon"]
    assert hours.opens == time(0, 0) and hours.closes > time(23, 59, 59)
    assert hours.text() == "00:00-24:00"
