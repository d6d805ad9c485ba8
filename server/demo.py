"""``numerek-demo``: the whole office on one machine, with the example county office.

Starts a private Mosquitto, the server, and the device roles in demo mode (kiosk and hall
display windows — under a virtual screen when there is no desktop —, a counter unit on
gpiozero's mock pins), plus simulated residents and clerks so that something happens on
the screens. Every part is the real program, started the way systemd starts it on a Pi;
the demo only wraps them. Ctrl-C stops everything.

What a newcomer can count on:

* the demo runs its **own** broker and server: when a port is taken (a Mosquitto service
  installed on the machine, a second demo, a port still closing after Ctrl-C) it picks a
  free one and says which, never silently talking to someone else's broker;
* any failure stops everything it started, with one sentence saying what went wrong;
* restarting on the same day continues the demo day where it stopped (no negative waits);
* without a desktop, the kiosk and the hall display each get their own virtual screen, and
  ``--screenshots DIR`` (default ``demo-data/screens``) keeps a fresh PNG of each;
* the demo counter's buttons are pressed by typing in the demo's terminal (``next`` + Enter).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from server.config import EXAMPLE_CONFIG, ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


class DemoError(RuntimeError):
    """Why the demo cannot go on, in one sentence for the newcomer."""


def _listening(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:port (a port only closing does not)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def _bindable(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as mosquitto and uvicorn do
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pick_port(wanted: int, what: str, host: str = "127.0.0.1") -> int:
    """``wanted`` if the demo can use it, else a free port, saying why."""
    if _bindable(wanted, host) and not _listening(wanted):
        return wanted
    port = _free_port()
    print(f"  port {wanted} is taken by another program: the demo's {what} uses port {port} instead")
    return port


def demo_clock_start(tz, database: Path | None = None) -> str:
    """A weekday at 10:00, so the example office is open whatever the real time is; on a
    restart the same day, a minute after the demo day's last event, so that the queue goes
    on (a clock back at 10:00 made waits negative)."""
    day = datetime.now(tz)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    start = day.replace(hour=10, minute=0, second=0, microsecond=0)
    if database is not None and database.exists():
        try:
            db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
            row = db.execute("SELECT max(at) FROM events WHERE day = ?", (start.date().isoformat(),)).fetchone()
            db.close()
        except sqlite3.Error:
            row = None
        if row and row[0]:
            start = max(start, datetime.fromtimestamp(row[0], tz) + timedelta(minutes=1))
    return start.isoformat()


def seed_bookings(url: str, service: str, day: str, count: int = 3) -> list[tuple[str, str, str]]:
    """Book ``count`` visits for ``day`` through the public booking form, as residents would:
    [(time, code, the booking's link)]. Why in the demo: a newcomer can type a code on the
    kiosk ("Mam rezerwację") and watch the appointment called at its time (docs/booking.md)."""
    with urllib.request.urlopen(f"{url}/rezerwacja/{service}/{day}", timeout=10) as r:
        slots = re.findall(r'name="slot" value="([^"]+)"', r.read().decode())
    made = []

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(_NoRedirect)
    for n, slot in enumerate(slots[: count * 2 : 2]):
        form = {"slot": slot, "name": f"Mieszkaniec Demo {n + 1}", "contact": f"+48 601 900 0{n:02d}", "consent": "yes"}
        try:
            opener.open(f"{url}/rezerwacja/{service}/{day}", urllib.parse.urlencode(form).encode(), timeout=10)
            continue  # not a redirect: not booked
        except urllib.error.HTTPError as answer:
            if answer.code != 303:
                continue
            link = answer.headers["Location"].split("?")[0]
        with urllib.request.urlopen(url + link, timeout=10) as r:
            found = re.search(r'id="code">([^<]+)<', r.read().decode())
        if found:
            made.append((slot[11:16], found.group(1), url + link))
    return made


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data = Path(args.data_dir).resolve()
        self.data.mkdir(parents=True, exist_ok=True)
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.stop = threading.Event()
        self.bin = Path(sys.executable).parent
        self.screens: dict[str, str] = {}  # role -> its virtual X display

    def spawn(
        self, name: str, cmd: list[str], env: dict[str, str] | None = None, stdin: int | None = subprocess.DEVNULL
    ) -> subprocess.Popen:
        log = open(self.data / f"{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            cmd, stdin=stdin, stdout=log, stderr=subprocess.STDOUT, env=env or os.environ.copy(), cwd=ROOT
        )
        self.procs.append((name, proc))
        print(f"  started {name:<10} pid {proc.pid:<7} log {self.data / (name + '.log')}")
        return proc

    def start_broker(self) -> int:
        """The demo's own Mosquitto (never one that happens to listen on the port)."""
        port = pick_port(self.args.mqtt_port, "broker")
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.data / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "set_tcp_nodelay true\nmax_queued_messages 10000\n"
        )
        proc = self.spawn("mosquitto", [exe, "-c", str(conf)])
        deadline = time.monotonic() + 10
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise DemoError(f"the demo's broker did not start; see {self.data / 'mosquitto.log'}")
            time.sleep(0.1)
        return port

    def seed_history(self, clock_start: str) -> None:
        """A new demo database gets four simulated weeks before the demo day, so the
        reports have something to show."""
        db = self.data / "numerek.db"
        if db.exists() or self.args.no_history:
            return
        day = datetime.fromisoformat(clock_start).date()
        subprocess.run(
            [
                str(self.bin / "numerek-simulate"),
                "--config",
                self.args.config,
                "--database",
                str(db),
                "--start",
                (day - timedelta(days=28)).isoformat(),
                "--days",
                "28",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def login(self, name: str, role: str) -> tuple[str, str, Path]:
        """The demo's login for ``role``: made once with a random password, kept in
        ``demo-data/<role>-login.txt`` (there is no default password, not even in the demo)."""
        kept = self.data / f"{role}-login.txt"
        if not kept.exists():
            password = secrets.token_urlsafe(9)
            users = [
                str(self.bin / "numerek-users"),
                "--config",
                self.args.config,
                "--database",
                str(self.data / "numerek.db"),
            ]
            made = subprocess.run(
                [*users, "add", name, "--role", role, "--password-stdin"],
                input=password + "\n",
                text=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if made.returncode != 0:  # the login exists but its file was deleted: give it a new password
                subprocess.run(
                    [*users, "passwd", name, "--password-stdin"],
                    input=password + "\n",
                    text=True,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
            kept.write_text(f"{name} {password}\n")
            kept.chmod(0o600)
        name, password = kept.read_text().split()
        return name, password, kept

    def start_server(self, mqtt_port: int) -> str:
        cfg = load_config(self.args.config)
        clock_start = demo_clock_start(cfg.office.tz, self.data / "numerek.db")
        self.seed_history(clock_start)
        self.logins = {role: self.login(name, role) for name, role in (("kierownik", "manager"), ("urzednik", "clerk"))}
        http_port = pick_port(self.args.http_port, "web server", cfg.http.host)
        cmd = [
            str(self.bin / "numerek-server"),
            "--config",
            self.args.config,
            "--database",
            str(self.data / "numerek.db"),
            "--mqtt-port",
            str(mqtt_port),
            "--http-port",
            str(http_port),
            "--clock-start",
            clock_start,
        ]
        proc = self.spawn("server", cmd)
        url = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as r:
                    if json.load(r)["broker_connected"]:
                        return url
            except OSError:
                pass
            time.sleep(0.2)
        raise DemoError("the server did not come up; see " + str(self.data / "server.log"))

    def screen_env(self, role: str, size: str) -> dict[str, str]:
        """The role's screen: the desktop when there is one, else a virtual screen of its own
        (the kiosk's and the display's windows would overlap on one)."""
        env = os.environ.copy()
        if env.get("DISPLAY") or self.args.no_gui:
            return env
        xvfb = shutil.which("Xvfb")
        if not xvfb:
            return env
        r, w = os.pipe()
        proc = subprocess.Popen(
            [xvfb, "-displayfd", str(w), "-screen", "0", f"{size}x24", "-nolisten", "tcp"],
            pass_fds=(w,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(w)
        with os.fdopen(r) as f:
            env["DISPLAY"] = ":" + f.readline().strip()
        self.procs.append((f"xvfb-{role}", proc))
        self.screens[role] = env["DISPLAY"]
        return env

    def start_roles(self, mqtt_port: int, url: str) -> None:
        from server.demo_roles import role_commands

        sizes = {"kiosk": "1280x720", "display": "1280x720"}
        for name, cmd, needs_screen in role_commands(self.data, mqtt_port, url, self.bin):
            if needs_screen and self.args.no_gui:
                continue
            if needs_screen:
                self.spawn(name, cmd, self.screen_env(name, sizes.get(name, "1280x720")))
            elif name == "counter":
                self.counter = self.spawn(name, cmd, stdin=subprocess.PIPE)
            else:
                self.spawn(name, cmd)
        if self.screens:
            folder = Path(self.args.screenshots or self.data / "screens")
            folder.mkdir(parents=True, exist_ok=True)
            threading.Thread(target=self.take_screenshots, args=(folder,), daemon=True).start()
            shown = ", ".join(f"{role} on {d}" for role, d in self.screens.items())
            print(f"  no desktop: {shown}; a fresh screenshot of each every 5 s in {folder}")

    def take_screenshots(self, folder: Path) -> None:
        """Keep ``<role>.png`` of each virtual screen fresh (written aside, then renamed)."""
        from PIL import ImageGrab

        while not self.stop.wait(5):
            for role, display in self.screens.items():
                try:
                    image = ImageGrab.grab(xdisplay=display)
                    image.save(folder / f".{role}.png")
                    os.replace(folder / f".{role}.png", folder / f"{role}.png")
                except OSError:
                    pass  # the screen is going away (Ctrl-C)

    def press_buttons(self) -> None:
        """Lines typed in the demo's terminal press the demo counter's buttons."""
        for line in sys.stdin:
            counter = getattr(self, "counter", None)
            if counter is None or counter.poll() is not None or counter.stdin is None:
                return
            try:
                counter.stdin.write(line.encode())
                counter.stdin.flush()
            except (BrokenPipeError, ValueError):
                return

    def residents_and_clerks(self, mqtt_port: int) -> None:
        """Simulated traffic over real MQTT: tickets every few seconds, clerks calling."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from protocol.topics import Topics

        cfg = load_config(self.args.config)
        topics = Topics(cfg.mqtt.topic_base)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-traffic", protocol=mqtt.MQTTv5)
        client.connect("127.0.0.1", mqtt_port)
        client.loop_start()
        rng = random.Random()
        services = [s.id for s in cfg.services]
        counters = [c.id for c in cfg.counters if c.id != self.args.hardware_counter]
        while not self.stop.wait(self.args.pace * rng.uniform(0.5, 1.5)):
            if rng.random() < 0.6:
                payload = {
                    "v": 1,
                    "id": uuid.uuid4().hex,
                    "service": rng.choice(services),
                    "priority": rng.random() < 0.1,
                }
                client.publish(topics.kiosk_request("demo-sim"), json.dumps(payload), qos=1)
            else:
                payload = {"v": 1, "id": uuid.uuid4().hex, "action": "next"}
                client.publish(topics.counter_command(rng.choice(counters)), json.dumps(payload), qos=1)
        client.disconnect()
        client.loop_stop()

    def run(self) -> int:
        print("Numerek demo — starting:")
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        # Ctrl-C stops the demo even when it was started from a script's background job, where
        # the shell hands it SIGINT ignored and Python then keeps ignoring it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            port = self.start_broker()
            fresh = not (self.data / "numerek.db").exists()
            url = self.start_server(port)
            if fresh:  # a few bookings for today, for the kiosk's "Mam rezerwację"
                day = demo_clock_start(load_config(self.args.config).office.tz)[:10]
                self.bookings = seed_bookings(url, "rej", day) if load_config(self.args.config).booking.plans else []
            self.start_roles(port, url)
        except (DemoError, ConfigError, OSError, subprocess.SubprocessError) as exc:
            print(f"numerek-demo: {exc}", file=sys.stderr)
            self.shutdown()
            return 1
        except BaseException:
            self.shutdown()
            raise
        return self.serve(port, url)

    def serve(self, port: int, url: str) -> int:
        """Say where everything is and run until Ctrl-C (or SIGTERM, or the server or broker ending).

        Ctrl-C is caught from the first line on: pressed while "Ready." was being printed (a
        newcomer's reflex, and a test's next step), it once ended the demo with status -2 and left the
        server, the broker and the counter running."""
        try:
            if self.args.pace > 0:
                threading.Thread(target=self.residents_and_clerks, args=(port,), daemon=True).start()
            print(f"\nReady. Server {url}  (API docs {url}/docs, live queues {url}/api/queues)")
            for what, path, role in (
                ("Clerk panel", "/clerk/1", "clerk"),
                ("Manager dashboard", "/reports", "manager"),
            ):
                name, password, kept = self.logins[role]
                print(f"{what} {url}{path}   (login {name}, password {password}; kept in {kept})")
            print(f"Booking site {url}/rezerwacja   reception desk {url}/recepcja (clerk login)")
            for at, code, link in getattr(self, "bookings", []):
                print(f"  booked for today {at}: code {code} (check in at the kiosk from 30 min before)  {link}")
            print(f"Broker 127.0.0.1:{port}")
            print(f"Watch the traffic: mosquitto_sub -V mqttv5 -p {port} -t 'numerek/#' -v")
            if getattr(self, "counter", None) is not None:
                print(
                    f"Counter {self.args.hardware_counter}'s buttons: type next, recall, no_show, finish, pause "
                    "or rate 5, then Enter (its display and LEDs: counter.log)"
                )
                if sys.stdin is not None and not sys.stdin.closed:
                    threading.Thread(target=self.press_buttons, daemon=True).start()
            print("Ctrl-C stops everything.")
            while not self.stop.wait(1):
                for name, proc in self.procs:
                    if proc.poll() is not None and name in ("server", "mosquitto"):
                        print(f"{name} exited with {proc.returncode}; see {self.data / (name + '.log')}")
                        self.stop.set()
        except KeyboardInterrupt:
            pass
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        self.stop.set()
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        print("stopped.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="numerek-demo", description=__doc__)
    p.add_argument("--config", default=str(EXAMPLE_CONFIG), help="site config (default: the example county office)")
    p.add_argument("--data-dir", default=str(ROOT / "demo-data"), help="where the demo keeps its database and logs")
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--pace", type=float, default=4.0, help="seconds between simulated events (0: none)")
    p.add_argument("--hardware-counter", default="1", help="the counter driven by the demo counter unit")
    p.add_argument("--no-gui", action="store_true", help="do not start the kiosk and display windows")
    p.add_argument("--no-history", action="store_true", help="no simulated weeks before the demo day (a quick start)")
    p.add_argument("--screenshots", help="where to keep screenshots of the virtual screens (default demo-data/screens)")
    return Demo(p.parse_args(argv)).run()


if __name__ == "__main__":
    raise SystemExit(main())
