"""``numerek-release``: a Pi moves to a new version and back without re-flashing, keeping its config and data.

The real tool on a temporary prefix (no systemd here, as in a chroot: NUMEREK_OFFLINE=1),
with real venvs and real pip installs of the counter role (the lightest). The same path
runs on arm64 in deploy/arm64/update-check.sh, with the server restarted and answering.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT

# Builds two releases' environments with pip: 3-5 minutes on a busy machine (the 300-s default bounds a
# hung test; this one took 300 s at load 15 while working).
pytestmark = pytest.mark.timeout(900)

TOOL = ROOT / "deploy" / "numerek-release"


def copy_tree(dest: Path, version: str) -> Path:
    """This checkout as a clone has it, with ``version`` in pyproject.toml."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())
    pyproject = dest / "pyproject.toml"
    pyproject.write_text(re.sub(r'^version = ".*"$', f'version = "{version}"', pyproject.read_text(), flags=re.M))
    return dest


class Machine:
    """A Pi's /opt/numerek, /etc/numerek and /var/lib/numerek under a temp folder."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.prefix, self.etc, self.state = base / "opt", base / "etc", base / "var"
        self.units = base / "units"
        for d in (self.prefix, self.etc, self.state, self.units):
            d.mkdir(parents=True)
        self.env = {
            **os.environ,
            "NUMEREK_PREFIX": str(self.prefix),
            "NUMEREK_ETC": str(self.etc),
            "NUMEREK_STATE": str(self.state),
            "NUMEREK_UNIT_DIR": str(self.units),
            "NUMEREK_PYTHON": sys.executable,
            "NUMEREK_OFFLINE": "1",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(TOOL), *args], env=self.env, capture_output=True, text=True, timeout=900)

    def current(self) -> str:
        return os.readlink(self.prefix / "current")

    def running_version(self) -> str:
        """What the units would start: the numerek package behind /opt/numerek/venv."""
        python = self.prefix / "venv" / "bin" / "python"
        done = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('numerek'))"],
            cwd=self.base,  # not this checkout, whose numerek.egg-info would answer instead
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    def snapshot(self) -> dict[str, str]:
        """Config and data as bytes' hashes: a release must not touch them."""
        out = {}
        for top in (self.etc, self.state):
            for path in sorted(top.rglob("*")):
                if path.is_file() and "backups" not in path.parts:
                    out[str(path.relative_to(self.base))] = hashlib.sha256(path.read_bytes()).hexdigest()
        return out


@pytest.fixture(scope="module")
def machine(tmp_path_factory) -> Machine:
    base = tmp_path_factory.mktemp("release")
    m = Machine(base / "pi")
    src = copy_tree(base / "src-1", "0.1.0")
    assert m.run("add-role", "counter").returncode == 0
    done = m.run("install", str(src))
    assert done.returncode == 0, done.stderr
    # The machine's own config and data, as an office leaves them.
    config = (ROOT / "counter" / "examples" / "counter.toml").read_text().replace("port = 1883", "port = 1884")
    (m.etc / "counter.toml").write_text(config)
    (m.state / "kivy-kiosk").mkdir()
    (m.state / "kivy-kiosk" / "config.ini").write_text("[graphics]\nfullscreen = auto\n")
    return m


def test_an_update_switches_to_the_new_version_keeps_config_and_data_and_rolls_back(machine, tmp_path):
    first = machine.current()
    assert first.startswith("releases/0.1.0-") and machine.running_version() == "0.1.0"
    assert (machine.units / "numerek-counter.service").read_text() == (
        ROOT / "systemd" / "numerek-counter.service"
    ).read_text()
    kept = machine.snapshot()

    done = machine.run("install", str(copy_tree(tmp_path / "src-2", "0.2.0")))
    assert done.returncode == 0, done.stderr
    assert machine.current().startswith("releases/0.2.0-") and machine.running_version() == "0.2.0"
    assert os.readlink(machine.prefix / "previous") == first
    assert machine.snapshot() == kept
    listing = machine.run("list").stdout
    assert re.search(r"^\* 0\.2\.0-", listing, re.M) and re.search(r"^< 0\.1\.0-", listing, re.M), listing

    done = machine.run("rollback")
    assert done.returncode == 0, done.stderr
    assert machine.current() == first and machine.running_version() == "0.1.0"
    assert machine.snapshot() == kept
    assert "rolled back from 0.2.0-" in done.stdout


def test_a_version_that_refuses_the_machines_config_is_not_switched_to(machine, tmp_path):
    before = machine.current()
    kept = machine.snapshot()
    src = copy_tree(tmp_path / "src-3", "0.3.0")
    # A version whose counter no longer accepts this config (here: any config).
    cli = src / "counter" / "cli.py"
    cli.write_text(
        cli.read_text().replace(
            "    if args.check:\n",
            '    if args.check:\n        print("[broker] port: 1884 is not allowed any more", file=sys.stderr)\n'
            "        return 2\n",
            1,
        )
    )
    done = machine.run("install", str(src))
    assert done.returncode == 1
    assert "port: 1884 is not allowed any more" in done.stderr and "nothing was switched" in done.stderr
    assert machine.current() == before
    assert machine.snapshot() == kept


def test_a_source_that_is_not_numerek_is_refused_before_anything_is_built(machine, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "setup.py").write_text("")
    before = sorted(p.name for p in (machine.prefix / "releases").iterdir())
    done = machine.run("install", str(tmp_path / "other"))
    assert done.returncode != 0 and "not a Numerek source tree" in done.stderr
    assert sorted(p.name for p in (machine.prefix / "releases").iterdir()) == before
