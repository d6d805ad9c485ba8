"""numerek-notify --check [--send-test], run as the IT person would run it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import ROOT
from tests.notify_support import GammuDaemon, read_smsbackup


@pytest.fixture
def smsd(tmp_path: Path) -> Iterator[GammuDaemon]:
    daemon = GammuDaemon(tmp_path / "gammu")
    yield daemon
    daemon.stop()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "numerek-notify"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def write(path: Path, smsd: GammuDaemon, extra: str = "") -> Path:
    path.write_text(
        f"""
sms = "modem"

[notify]
office = "Starostwo Łódź"

[gateways.modem]
type = "gammu"
smsdrc = "{smsd.rc}"
staging = "{smsd.root / "staging"}"
{extra}
""",
        encoding="utf-8",
    )
    return path


def test_check_names_every_mistake_in_the_config_and_changes_nothing(tmp_path, smsd):
    bad = tmp_path / "notify.toml"
    bad.write_text(
        'sms = "modem"\nemail = "modem"\n[notify]\noffice = ""\ntimezone = "Europe/Łódź"\n'
        '[gateways.modem]\ntype = "gammu"\nsmsdrc = "/nope"\ncolour = "red"\n',
        encoding="utf-8",
    )
    result = run("--config", str(bad), "--check")
    assert result.returncode == 2
    assert "notify.office: String should have at least 1 character" in result.stderr
    assert "notify.timezone: Value error, unknown time zone 'Europe/Łódź'" in result.stderr
    assert "gateways.modem.gammu.colour: Extra inputs are not permitted" in result.stderr
    assert smsd.outbox() == []


def test_check_finds_a_stopped_daemon_and_a_test_sms_goes_out_once_it_runs(tmp_path, smsd):
    config = write(tmp_path / "notify.toml", smsd)
    stopped = run("--config", str(config), "--check")
    assert stopped.returncode == 1
    assert "gammu-smsd is not running" in stopped.stdout
    smsd.start()
    result = run("--config", str(config), "--check", "--send-test", "600 100 200", "--wait", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gammu-smsd is running" in result.stdout
    assert (
        "test SMS: 'Starostwo Łódź: wiadomość testowa Numerka – zażółć gęślą jaźń.': 1 part (UCS-2, 62 characters)"
        in result.stdout
    )
    assert "sent to +48…00 through modem: accepted" in result.stdout
    assert "delivery: sent" in result.stdout
    assert "all checks passed" in result.stdout
    [sent] = smsd.sent()
    assert read_smsbackup(sent).number == "+48600100200"
    assert "600100200" not in result.stdout  # the number is never printed whole, not even in the file name


def test_a_number_that_cannot_get_sms_is_refused_before_anything_is_sent(tmp_path, smsd):
    smsd.start()
    result = run("--config", str(write(tmp_path / "notify.toml", smsd)), "--send-test", "42 123 45 67")
    assert result.returncode == 1
    assert "not a mobile number" in result.stdout
    assert smsd.outbox() == [] and smsd.sent() == []
