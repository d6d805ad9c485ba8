"""The office on one emulated arm64 machine: run inside the chroot that deploy/arm64-check.sh made.

Why a script of its own: everything here runs on the arm64 side (qemu-user), with the
programs, units and configs that ``systemd/install.sh`` installed, as a Pi would run them.
No systemd runs in a chroot, so each unit's ``ExecStart=``, ``User=`` and ``Environment=``
are read from the installed unit file and started the same way; the server gets a real
``NOTIFY_SOCKET`` and must say ``READY=1``. It runs in a network namespace of its own, so the
office's real ports (1883, 8080) are used, as on the Pi, without touching this machine's.

Steps: Mosquitto with the installed closed-broker config; the server (``/health``); device
accounts from ``numerek-provision``; the kiosk and the display on Xvfb (screenshots); the
counter on gpiozero's mock pins. A ticket is taken by tapping the kiosk and called by
pressing NEXT on the counter; the display must show it. Exit 0 only if all of that happened.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

ETC = Path("/etc/numerek")
UNITS = Path("/etc/systemd/system")
VENV = Path("/opt/numerek/venv")
ALWAYS_OPEN = "{ " + ", ".join(f'{d} = "00:00-24:00"' for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")) + " }"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_for(what: str, predicate: Callable[[], Any], timeout: float) -> Any:
    """Poll until ``predicate`` is truthy; emulation is slow, so callers give minutes, not seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit(f"FAILED: timed out after {timeout:.0f}s waiting for {what}")


def unit(role: str) -> dict[str, list[str]]:
    """The installed unit's [Service] keys (a key may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in (UNITS / f"numerek-{role}.service").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service":
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


class Service:
    """One unit's command, started as its ``User=`` with its ``Environment=`` (as systemd would)."""

    def __init__(
        self,
        role: str,
        out: Path,
        extra_args: tuple[str, ...] | list[str] = (),
        env: dict[str, str] | None = None,
        stdin: bool = False,
    ) -> None:
        keys = unit(role)
        self.role = role
        argv = keys["ExecStart"][-1].split() + list(extra_args)
        environ = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        for item in keys.get("Environment", []):
            name, _, value = item.partition("=")
            environ[name] = value
        environ.update(env or {})
        user = keys["User"][0]
        groups = [g for line in keys.get("SupplementaryGroups", []) for g in line.split()]
        for runtime in keys.get("RuntimeDirectory", []):
            path = Path("/run") / runtime
            path.mkdir(mode=0o700, exist_ok=True)
            shutil.chown(path, user, user)
        state = Path("/var/lib") / keys.get("StateDirectory", ["numerek"])[0]
        state.mkdir(mode=0o750, exist_ok=True)
        shutil.chown(state, user, user)
        self.logfile = out / f"{role}.log"
        self.log: IO[bytes] = open(self.logfile, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv,
            env=environ,
            cwd=keys.get("WorkingDirectory", ["/"])[0],
            user=user,
            group=user,
            extra_groups=groups,
            umask=0o027,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        log(f"started numerek-{role} as {user} (+{','.join(groups) or 'no groups'}): {' '.join(argv)}")

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise SystemExit(f"FAILED: numerek-{self.role} exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self) -> str:
        return self.logfile.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.log.close()


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=20) as r:  # noqa: S310 - our own server on loopback
        return json.loads(r.read())


def install_device_config(account: str, role: str, edit: Callable[[str], str] = lambda t: t) -> Path:
    """Copy the provisioned file into place as the doc's ``install -m 0640 -o root -g numerek`` does."""
    text = edit((ETC / "devices" / f"{account}.toml").read_text(encoding="utf-8"))
    target = ETC / f"{role}.toml"
    target.write_text(text, encoding="utf-8")
    os.chown(target, 0, grp.getgrnam("numerek").gr_gid)
    target.chmod(0o640)
    return target


def check(role: str, config: Path) -> None:
    user = pwd.getpwnam("numerek")
    done = subprocess.run(
        [str(VENV / "bin" / f"numerek-{role}"), "--config", str(config), "--check"],
        user=user.pw_uid,
        group=user.pw_gid,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"FAILED: numerek-{role} --check {config}:\n{done.stdout}{done.stderr}")
    log(f"numerek-{role} --check: {done.stdout.strip()}")


def trace_entries(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            break
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for logs and screenshots (readable by user numerek)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o777)
    started: list[Service] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        run_office(out, started, procs)
    finally:
        for s in reversed(started):
            s.stop()
        for proc in procs:
            proc.terminate()
            proc.wait(60)
    log("PASSED: the office ran on arm64")
    return 0


def start_broker(procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Debian's Mosquitto with the config install.sh put in place (closed: accounts and ACL)."""
    Path("/run/mosquitto").mkdir(exist_ok=True)
    shutil.chown("/run/mosquitto", "mosquitto", "mosquitto")
    broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", "/etc/mosquitto/mosquitto.conf"])
    procs.append(broker)
    wait_for("Mosquitto on port 1883", lambda: port_open(1883), 120)
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "mosquitto"], capture_output=True, text=True).stdout
    log(f"Mosquitto {version} runs the installed closed-broker config")
    return broker


def start_server(out: Path, started: list[Service], broker: subprocess.Popen[bytes]) -> None:
    """The server as its unit starts it, with a NOTIFY_SOCKET: it must say READY=1 and ping the watchdog."""
    log(f"current release: {os.readlink('/opt/numerek/current')}")
    notify_path = "/run/numerek-check-notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if os.path.exists(notify_path):
        os.unlink(notify_path)
    notify.bind(notify_path)
    os.chmod(notify_path, 0o777)
    notify.settimeout(1)
    t0 = time.monotonic()
    server = Service("server", out, env={"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "30000000"})
    started.append(server)
    said: list[str] = []

    def ready() -> bool:
        server.alive()
        try:
            said.extend(notify.recv(4096).decode().split("\n"))
        except TimeoutError:
            pass
        return "READY=1" in said

    wait_for("the server's READY=1 on NOTIFY_SOCKET", ready, 600)
    health = http_json("http://127.0.0.1:8080/health")
    log(f"server READY=1 after {time.monotonic() - t0:.0f}s; GET /health -> {health}")
    wait_for("a WATCHDOG=1 ping", lambda: ready() and "WATCHDOG=1" in said, 120)
    log("server pings WATCHDOG=1")


def run_office(out: Path, started: list[Service], procs: list[subprocess.Popen[bytes]]) -> None:
    broker = start_broker(procs)
    site = ETC / "numerek.toml"
    text = site.read_text(encoding="utf-8")
    # The example office keeps office hours; the check runs at any hour.
    text = re.sub(r"^hours = \{.*\}$", f"hours = {ALWAYS_OPEN}", text, flags=re.M)
    text = re.sub(r"^cutoff_min = \d+", "cutoff_min = 0", text, flags=re.M)
    site.write_text(text, encoding="utf-8")
    check("server", site)
    start_server(out, started, broker)

    # ---------------------------------------------------------------- device accounts
    provision = [str(VENV / "bin" / "numerek-provision"), "--broker-pid", str(broker.pid)]
    for cmd in (["add", "kiosk", "k1"], ["add", "display", "hall-1", "--zone", "hall"], ["add", "counter", "1"]):
        # --replace: a rerun over the same root (NUMEREK_ARM64_REUSE=1) finds the accounts there.
        done = subprocess.run([*provision, *cmd, "--replace"], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise SystemExit(f"FAILED: numerek-provision {' '.join(cmd)}: {done.stderr}")
        log(f"numerek-provision {' '.join(cmd)}: {done.stdout.strip().splitlines()[0]}")
    kiosk_conf = install_device_config("kiosk-k1", "kiosk")
    display_conf = install_device_config(
        "display-hall-1",
        "display",
        # No sound card in a chroot: the display writes its announcements as WAV files.
        lambda t: t.replace('output = "alsa"', 'output = "files"\nrecord_dir = "/var/lib/numerek/announcements"'),
    )
    # No I2C LCD here: the number display logs what a clerk would read.
    counter_conf = install_device_config(
        "counter-1", "counter", lambda t: t.replace('kind = "lcd"', 'kind = "console"')
    )
    for role, conf in (("kiosk", kiosk_conf), ("display", display_conf), ("counter", counter_conf)):
        check(role, conf)

    # ---------------------------------------------------------------- screens
    # Two screens, as two Pis have: the kiosk on :7, the display on :8 (each full-screen).
    for number in (7, 8):
        xvfb = subprocess.Popen(
            ["Xvfb", f":{number}", "-screen", "0", "1280x720x24", "-nolisten", "tcp"], stderr=subprocess.DEVNULL
        )
        procs.append(xvfb)
        socket_path = Path(f"/tmp/.X11-unix/X{number}")
        wait_for(f"Xvfb :{number}", socket_path.exists, 120)
    # The units say SDL_VIDEODRIVER=kmsdrm; a chroot has no KMS device, so X11 on Xvfb instead.
    # KIVY_GL_BACKEND=sdl2 stays as the units set it.
    kiosk_env = {"DISPLAY": ":7", "SDL_VIDEODRIVER": "x11"}
    display_env = {"DISPLAY": ":8", "SDL_VIDEODRIVER": "x11"}
    trace = out / "kiosk-trace.jsonl"
    shots = out / "kiosk"
    probe = out / "display-probe"
    kiosk = Service("kiosk", out, ["--trace", str(trace), "--screenshot-dir", str(shots)], env=kiosk_env)
    started.append(kiosk)
    display = Service("display", out, env={**display_env, "NUMEREK_DISPLAY_PROBE": str(probe)})
    started.append(display)
    counter = Service("counter", out, ["--mock-pins"], env={"GPIOZERO_PIN_FACTORY": "mock"}, stdin=True)
    started.append(counter)

    def kiosk_home() -> dict[str, Any] | None:
        kiosk.alive()
        entries = trace_entries(trace)
        if entries and entries[-1]["screen"] == "home":
            buttons = {k: v for k, v in entries[-1]["buttons"].items() if k.startswith("service:") and v[2]}
            # Under emulation the trace can show a screen before Kivy has laid it out (every
            # button still at the same place): wait for the buttons to have their own places.
            laid_out = len({(x, y) for x, y, _ in buttons.values()}) == len(buttons)
            return buttons if buttons and laid_out else None
        return None

    t0 = time.monotonic()
    buttons = wait_for("the kiosk's home screen with services it can issue", kiosk_home, 900)
    log(f"kiosk home screen after {time.monotonic() - t0:.0f}s: {sorted(buttons)}")

    def waiting(service: str) -> int:
        return next(q["waiting"] for q in http_json("http://127.0.0.1:8080/api/queues") if q["service"] == service)

    before = waiting("rej")
    x, y, _ = buttons["service:rej"]
    subprocess.run(
        ["xdotool", "mousemove", "--sync", str(x), str(y), "click", "1"], env={"DISPLAY": ":7"}, check=True, timeout=120
    )

    def ticket() -> dict[str, Any] | None:
        kiosk.alive()
        entries = trace_entries(trace)
        return next((e for e in reversed(entries) if e["screen"] == "ticket" and e.get("ticket")), None)

    def issued() -> bool:
        return ticket() is not None or waiting("rej") > before

    wait_for("a ticket issued from the kiosk's tap (server's queue or the kiosk's ticket screen)", issued, 600)
    try:  # the server may have it before the emulated kiosk has drawn its ticket screen
        shown = wait_for("the kiosk's ticket screen", ticket, 240)
    except SystemExit:
        shown = None
    if shown:
        log(f"kiosk showed ticket {shown['ticket']} (texts: {shown['texts'][:4]})")
    else:
        # Seen under heavy emulation: the kiosk's MQTT link (keepalive 10 s) drops while the
        # emulated process stalls, the reply is lost, and the kiosk goes home without showing it.
        log(
            f"WARNING: the server queued the ticket (rej waiting {before} -> {waiting('rej')}), the kiosk did not show it"
        )

    def board_ready() -> bool:
        display.alive()
        return (probe / "screen.json").exists()

    wait_for("the display's first frame", board_ready, 900)
    log("display is drawing")
    counter.alive()
    assert counter.proc.stdin is not None
    wait_for("the counter seeing the server online", lambda: "server is online" in counter.tail(), 600)
    counter.proc.stdin.write(b"next\n")
    counter.proc.stdin.flush()

    def on_counter() -> str | None:
        counter.alive()
        found = re.findall(r"\[counter 1\] \|[^|]*?\b(A\d{3})\b", counter.tail())
        return found[-1] if found else None

    number = wait_for("the counter's number display showing the called ticket", on_counter, 600)
    if shown and shown["ticket"] != number:
        raise SystemExit(f"FAILED: the kiosk gave {shown['ticket']} but the counter called {number}")
    log(f"counter 1 pressed NEXT and shows {number}")

    def called() -> str | None:
        display.alive()
        try:
            screen = (probe / "screen.json").read_text(encoding="utf-8")
        except OSError:
            return None
        return screen if number in screen else None

    wait_for(f"the display showing the call of {number}", called, 600)
    log(f"the display shows {number}")
    (probe / "called.shot").write_text("")
    wait_for("the display's screenshot", lambda: (probe / "called.png").exists(), 600)
    shutil.copy(probe / "called.png", out / "display-called.png")
    kiosk_pngs = sorted(shots.glob("*.png")) if shots.exists() else []
    log(f"screenshots: {out / 'display-called.png'}, kiosk: {[p.name for p in kiosk_pngs]}")
    queues = urllib.request.urlopen("http://127.0.0.1:8080/health", timeout=20).read().decode()
    log(f"/health at the end: {queues}")
    log(f"counter's number display: {[ln for ln in counter.tail().splitlines() if number in ln][-1].strip()}")


if __name__ == "__main__":
    sys.exit(main())
