"""Real parts for tests: a Mosquitto broker, the real server process, an MQTT peer.

Nothing here fakes our own boundaries: the broker is Debian's mosquitto on a free
loopback port, the server is ``numerek-server`` started as a subprocess with a real
SQLite file, and :class:`Peer` is a plain paho MQTT 5 client like any device.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import certifi
import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol.mqtt import _no_delay, response_properties

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


def _listen_ports() -> range:
    """The ports this pytest process hands out to the servers it starts.

    Below the kernel's ephemeral range (outgoing connections take their local ports there, so a
    port picked by ``bind(0)`` could be taken by any client before the server binds it), and a
    slice of its own for each pytest-xdist worker, so two workers never pick the same port.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    first = 10000
    if low - first < 2000:  # an unusual kernel setting: no room below it
        return range(0)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker) if worker.isdigit() else 0
    size = (low - first) // max(count, 1)
    return range(first + index * size, first + (index + 1) * size)


_PORTS = _listen_ports()
_next_port = random.randrange(len(_PORTS)) if _PORTS else 0  # two suites run at once start apart
_port_lock = threading.Lock()


TLS = ssl.create_default_context(cafile=certifi.where())
"""httpx's default trust, built once: ``httpx.get(url)`` builds it per call (30 ms of CPU, more than the
request), and the harness polls and asks the servers thousands of times. Pass ``verify=TLS``."""


ANSWER_TIMEOUT_S = 60.0
"""How long a test's HTTP request may wait for the server: a bound for a hung server, not a speed
check (5 s failed on a machine at load 18, where the first chart imports matplotlib for 20 s)."""


def free_port() -> int:
    """A loopback port nobody listens on, not handed out before by this process (see _listen_ports)."""
    global _next_port
    with _port_lock:
        for _ in range(len(_PORTS)):
            port = _PORTS[_next_port % len(_PORTS)]
            _next_port += 1
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue  # in use (another suite, a socket in TIME_WAIT): the next one
                return port
    with socket.socket() as s:  # no range of our own: the kernel's pick
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Broker:
    """A private Mosquitto on 127.0.0.1:<free port>, restartable on the same port."""

    def __init__(self, workdir: Path, extra_conf: str = "") -> None:
        self.exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n{extra_conf}\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(self._accepts, 10, f"mosquitto on port {self.port}")
        return self

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None


TEST_RECALL_GUARD_S = 2.0
"""The test office refuses a recall this soon after a call (the real default, 10 s, would slow the tests)."""

TEST_CONFIG = """
[office]
name = "Urząd Testowy w Łodzi"
timezone = "Europe/Warsaw"
recall_guard_s = 2.0

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}

[http]
host = "127.0.0.1"
port = {http_port}
public_url = "http://127.0.0.1:{http_port}"

[storage]
database = "{database}"

[limits]
kiosk_tickets = "{kiosk_rate}"

[[services]]
id = "rej"
prefix = "A"
name = {{ pl = "Rejestracja pojazdów", en = "Vehicle registration", uk = "Реєстрація" }}
zone = "hall"
hours = {hours}
daily_limit = {limit}
target_wait_min = 30

[[services]]
id = "pj"
prefix = "B"
name = {{ pl = "Prawo jazdy", en = "Driving licences" }}
zone = "hall"
hours = {hours}
target_wait_min = 20

[[services]]
id = "pasz"
prefix = "P"
name = {{ pl = "Paszporty", en = "Passports" }}
zone = "upstairs"
hours = {hours}
target_wait_min = 40

[[counters]]
id = "1"
name = "Stanowisko 1"
zone = "hall"
services = ["rej", "pj"]

[[counters]]
id = "2"
name = "Stanowisko 2"
zone = "hall"
services = ["pj", "rej"]

[[counters]]
id = "3"
name = "Stanowisko 3"
zone = "upstairs"
services = ["pasz"]
"""

ALWAYS_OPEN = "{ " + ", ".join(f'{d} = "00:00-24:00"' for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")) + " }"


def midday_zone() -> str:
    """A time zone (``Etc/GMT±N``) where it is now between 11:00 and 13:00: for a test office whose
    day must have hours left and hours behind it whenever the suite runs (the real server's clock
    is the real time; its office's zone is what the test chooses)."""
    hour = datetime.now(UTC).hour
    offset = 12 - hour  # UTC+offset is noon now, give or take the minutes
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")  # POSIX sign: Etc/GMT-5 is UTC+5


TEST_KIOSK_RATE = "1000/second"
"""The test office lets one kiosk account issue fast (tests drive many tickets through "k1");
tests/test_hostile.py checks the real default, a person's pace."""


def write_config(
    path: Path,
    mqtt_port: int,
    http_port: int,
    limit: int = 9999,
    hours: str = ALWAYS_OPEN,
    kiosk_rate: str = TEST_KIOSK_RATE,
) -> Path:
    path.write_text(
        TEST_CONFIG.format(
            mqtt_port=mqtt_port,
            http_port=http_port,
            database=path.parent / "numerek.db",
            limit=limit,
            hours=hours,
            kiosk_rate=kiosk_rate,
        ),
        encoding="utf-8",
    )
    return path


class ForkedProcess:
    """A server forked by tests/server_zygote.py, with the part of ``subprocess.Popen`` tests use
    (pid, poll, wait, signals). Its parent is the zygote, which reports its exit code."""

    def __init__(self, zygote: Zygote, pid: int, args: list[str]) -> None:
        self.zygote = zygote
        self.pid = pid
        self.args = args

    @property
    def returncode(self) -> int | None:
        return self.zygote.returncode(self.pid)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        code = self.zygote.wait(self.pid, timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """One tests/server_zygote.py per pytest process, started on the first server that can use it
    (and one tests/device_zygote.py, ``DEVICES``, for the kiosks and displays: ``start_app``)."""

    def __init__(self, module: str = "tests.server_zygote", kivy: bool = False) -> None:
        self.module = module
        self.kivy = kivy  # the device zygote: its own KIVY_HOME, the apps' environment given per start
        self.account = self  # whose ``cpu`` the ended processes' CPU is added to
        self._proc: subprocess.Popen | None = None
        self._env: dict[str, str] = {}
        self._lock = threading.Lock()  # one start request at a time
        self._cond = threading.Condition()
        self._started: list[int] = []
        self._exits: dict[int, int] = {}
        self._alive = False
        self.cpu = 0.0
        """User + system CPU seconds of the servers that have ended (tests/cpu_report.py)."""

    def usable(self) -> bool:
        """Only for a test process whose environment is the zygote's (its servers inherit it), and
        unless NUMEREK_TEST_EXEC=1 asks for the old way (to compare, or to rule the zygote out)."""
        if os.environ.get("NUMEREK_TEST_EXEC") == "1":
            return False
        if self.kivy:  # each app gets its environment with the request
            return self._proc is None or self._alive
        return self._proc is None or (self._alive and _environment() == self._env)

    def _spawn(self) -> None:
        self._env = _environment()
        env = None
        if self.kivy:  # what kiosk.cli and display.cli set before ``import kivy``, which reads it once
            home = Path(tempfile.mkdtemp(prefix="numerek-kivy-zygote-"))
            atexit.register(shutil.rmtree, home, True)
            env = {**self._env, "KIVY_HOME": str(home), "KIVY_NO_ARGS": "1", "KIVY_LOG_MODE": "PYTHON"}
            env.pop("DISPLAY", None)  # no window before the fork: a test's app opens its own
        self._proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        assert self._proc.stdout is not None
        if self._proc.stdout.readline() != b"ready\n":
            raise AssertionError(f"{self.module} did not start")
        self._alive = True
        threading.Thread(target=self._read, name="server-zygote", daemon=True).start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            word, *rest = line.decode().split()
            with self._cond:
                if word == "started":
                    self._started.append(int(rest[0]))
                elif word == "exit":
                    self._exits[int(rest[0])] = int(rest[1])
                    self.account.cpu += float(rest[2]) if len(rest) > 2 else 0.0
                self._cond.notify_all()
        with self._cond:
            self._alive = False
            self._cond.notify_all()

    def start(
        self, argv: list[str], log: Path, cwd: Path, module: str = "server.cli", env: dict[str, str] | None = None
    ) -> ForkedProcess:
        request: dict[str, Any] = {"argv": argv, "cwd": str(cwd), "log": str(log)}
        if self.kivy:
            request |= {"module": module, "env": dict(env if env is not None else os.environ)}
        return ForkedProcess(self, self._fork(request), [sys.executable, "-m", module, *argv])

    def run_module(
        self, module: str | Path, argv: list[str], files: dict[str, str], cwd: Path = ROOT, append: bool = False
    ) -> ForkedProcess:
        """``python -m <module> <argv>`` (a Path: ``python <script> <argv>``), forked; ``files``: its
        stdin, stdout and stderr paths (``append``: added to, as a log; else written anew)."""
        what = {"script": str(module)} if isinstance(module, Path) else {"module": module}
        request = {**what, "tool": True, "argv": argv, "cwd": str(cwd), "append": append, **files}
        args = [sys.executable, str(module)] if isinstance(module, Path) else [sys.executable, "-m", module]
        return ForkedProcess(self, self._fork(request), [*args, *argv])

    def _fork(self, request: dict) -> int:
        with self._lock:
            if self._proc is None:
                self._spawn()
            assert self._proc is not None and self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            self._proc.stdin.flush()
            with self._cond:
                if not self._cond.wait_for(lambda: self._started or not self._alive, 30):
                    raise AssertionError(f"{self.module} did not fork within 30 s")
                if not self._started:
                    raise AssertionError(f"{self.module} exited")
                return self._started.pop(0)

    def close(self) -> None:
        """End the zygote and wait for it (at the pytest process's exit). Why wait: a process's CPU
        is added to its parent's only when the parent reaps it, so an orphaned zygote took its
        servers' CPU out of what ``/usr/bin/time`` reports for the suite (149 s of 1,010 in one run)."""
        if self._proc is None or self._proc.poll() is not None:
            return
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.close()  # its loop ends when its stdin does
            self._proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()

    def returncode(self, pid: int) -> int | None:
        with self._cond:
            code = self._exits.get(pid)
            if code is None and not self._alive and not _exists(pid):
                return -signal.SIGKILL  # the zygote was killed, and its children with it
            return code

    def wait(self, pid: int, timeout: float | None) -> int | None:
        with self._cond:
            self._cond.wait_for(lambda: pid in self._exits or not self._alive, timeout)
        if pid in self._exits or timeout is None:
            return self.returncode(pid)
        deadline = time.monotonic() + timeout  # the zygote is gone: watch the pid itself
        while time.monotonic() < deadline and self.returncode(pid) is None:
            time.sleep(0.05)
        return self.returncode(pid)


def _environment() -> dict[str, str]:
    """The environment a server would inherit, but for ``PYTEST_CURRENT_TEST``: pytest sets it to the
    running test's name, so comparing it sent every server after a worker's first to exec (1.9 s of
    CPU instead of 0.45 s) — the zygote's servers only ever inherit a stale name, which they never read."""
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


FORKS = Zygote()
atexit.register(FORKS.close)
DEVICES = Zygote("tests.device_zygote", kivy=True)
DEVICES.account = FORKS  # tests/cpu_report.py's "forked" column: the servers and the device apps
atexit.register(DEVICES.close)


def start_app(module: str, argv: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT):
    """``python -m kiosk.cli|display.cli <argv>`` with ``env``, its output appended to ``log``: a fork
    of tests/device_zygote.py (0.75 s of CPU less per start), or with exec under NUMEREK_TEST_EXEC=1.
    Returns what tests use of ``subprocess.Popen`` (pid, poll, wait, terminate, kill, returncode)."""
    if DEVICES.usable():
        return DEVICES.start(argv, log, cwd, module=module, env=env)
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module, *argv], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def run_tool(
    module: str | Path, *args: str, input: str | None = None, cwd: Path = ROOT, timeout: float = 300, **popen: Any
) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <args>`` as a user runs it, as ``subprocess.run(..., capture_output=True,
    text=True)`` returns it: its exit status, stdout and stderr (``input``: its stdin). A Path is a
    Python script run as ``python <script>``: the venv's ``bin/numerek-provision``, as its shebang runs it.

    Why: the interpreter's start and the imports were ~1.5 s of CPU per tool run, and the tests run
    the report mail, the simulator, ``numerek-users`` and the roles' ``--check`` hundreds of times.
    With the test process's own environment, from this checkout, it is a fork of the server zygote
    (tests/server_zygote.py ``tool``): the same module run as ``__main__`` with the same argv, in a
    process of its own. Otherwise (``-m`` in another folder, ``env=``, another Popen option, NUMEREK_TEST_EXEC=1)
    a fresh interpreter, as before."""
    argv = [sys.executable, str(module), *args] if isinstance(module, Path) else [sys.executable, "-m", module, *args]
    if popen or (Path(cwd) != ROOT and not isinstance(module, Path)) or not FORKS.usable():
        return subprocess.run(argv, input=input, capture_output=True, text=True, cwd=cwd, timeout=timeout, **popen)
    import locale

    with tempfile.TemporaryDirectory(prefix="numerek-tool-") as folder:
        files = {name: os.path.join(folder, name) for name in ("stdin", "stdout", "stderr")}
        Path(files["stdin"]).write_text(input or "", encoding=locale.getpreferredencoding(False))
        proc = FORKS.run_module(module, list(args), files, cwd=Path(cwd))
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(60)
            raise
        out, err = (
            Path(files[name]).read_text(encoding=locale.getpreferredencoding(False)) for name in ("stdout", "stderr")
        )
    return subprocess.CompletedProcess(argv, code, out, err)  # read_text: universal newlines, as text=True


def start_tool(
    module: str, *args: str, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen | ForkedProcess:
    """``python -m <module> <args>`` in the background (a replicator, the centre's ingester), its
    stdout and stderr added to ``log``: a fork of the server zygote as in ``run_tool``, or, with an
    environment of its own (``env``: added to the test process's), a fresh interpreter."""
    if env or not FORKS.usable():
        with open(log, "ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", module, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, **(env or {})},
            )
    log.touch()  # there when this returns, as with Popen(stdout=open(log, "ab"))
    files = {"stdin": os.devnull, "stdout": str(log), "stderr": str(log)}
    return FORKS.run_module(module, list(args), files, append=True)


@dataclass
class ServerProcess:
    """``numerek-server`` as a subprocess, as systemd would run it."""

    config: Path
    http_port: int
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | ForkedProcess | None = None
    env: dict[str, str] | None = None
    cwd: Path | None = None
    """Where the server's code is imported from (``python -m`` puts it first): a benchmark's older commit."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def database(self) -> Path:
        return self.config.parent / "numerek.db"

    CLERK = ("test-clerk", "test-clerk-password")
    """A clerk login every test server has: ``get``/``post`` use its session, as the clerk panel does."""

    def start(self, login: bool = True) -> ServerProcess:
        """Start and wait for /health; ``login=False`` for a server whose database is
        unusable on purpose (no clerk can be added to it, nobody can sign in)."""
        if login:
            self._add_clerk()
        argv = ["--config", str(self.config), "--log-level", "WARNING", *self.args]
        log = self.config.parent / "server.log"
        if not self.env and self.cwd is None and FORKS.usable():
            self.proc = FORKS.start(argv, log, cwd=ROOT)
        else:  # its own environment or code: a fresh interpreter
            with open(log, "ab") as out:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "server.cli", *argv],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.cwd or ROOT,
                    env={**os.environ, **(self.env or {})},
                )
        self._session = httpx.Client(base_url=self.url, timeout=ANSWER_TIMEOUT_S, verify=TLS)
        wait_for(self._healthy, 60, "numerek-server health")
        if not login:
            return self
        r = self._session.post("/login", data={"name": self.CLERK[0], "password": self.CLERK[1], "next": "/clerk"})
        assert r.status_code == 303, f"test clerk login failed: {r.status_code} {r.text[:200]}"
        return self

    def _add_clerk(self) -> None:
        """Create the test clerk in the server's database (as ``numerek-users add`` would)."""
        from server.auth import AuthError, Users

        try:
            database = self._database()
        except Exception:  # noqa: BLE001  # a test of a broken config: the server will say why
            return
        users = Users(database)
        try:
            users.add(self.CLERK[0], "clerk", self.CLERK[1])
        except AuthError:
            pass  # already there (a restart)
        finally:
            users.close()

    def _database(self) -> Path:
        from server.config import load_config

        return Path(load_config(self.config).storage.database)

    @property
    def session_cookie(self) -> str:
        """The test clerk's session cookie value (for a browser)."""
        from server.auth import SESSION_COOKIE

        return self._session.cookies[SESSION_COOKIE]

    def _healthy(self) -> bool:
        if self.proc and self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}: {self.log()[-2000:]}")
        try:  # a plain connect first: the poll costs next to nothing while Python imports
            socket.create_connection(("127.0.0.1", self.http_port), timeout=0.5).close()
        except OSError:
            return False
        try:
            return httpx.get(self.url + "/health", timeout=0.5, verify=TLS).json()["broker_connected"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    def log(self) -> str:
        return (self.config.parent / "server.log").read_text(errors="replace")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def freeze(self) -> None:
        """SIGSTOP the server and return once every one of its threads has stopped.

        Why wait: a stop is delivered to each thread when the kernel next runs it, and on a busy
        machine (a virtual one above all) a thread can run on for a moment after ``kill``
        returns. A test that presses a button "while the server is frozen" must not press into
        that moment, or the server answers in time and the test sees a different story."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        tasks = Path(f"/proc/{self.proc.pid}/task")

        def state(task: Path) -> str:
            try:  # "pid (comm) S ...": the state follows the last ')' (comm may hold one)
                return task.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                return "gone"

        wait_for(
            lambda: all(state(t) in {"T", "t", "gone"} for t in tasks.iterdir()), 10, "the server's threads stopped"
        )

    def thaw(self) -> None:
        """SIGCONT: the frozen server carries on where it stopped."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def get(self, path: str, **kw) -> httpx.Response:
        """GET as the signed-in test clerk, unless the test brings its own credentials
        (``auth=``, an Authorization header, cookies); ``anonymous_get`` is a resident's phone."""
        if self._own_credentials(kw):
            return self.anonymous_get(path, **kw)
        return self._session.get(path, timeout=ANSWER_TIMEOUT_S, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        if self._own_credentials(kw):
            return self.anonymous_post(path, **kw)
        return self._session.post(path, timeout=ANSWER_TIMEOUT_S, **kw)

    @staticmethod
    def _own_credentials(kw: dict) -> bool:
        headers = {k.lower() for k in (kw.get("headers") or {})}
        return "auth" in kw or "cookies" in kw or "authorization" in headers or "cookie" in headers

    def anonymous_get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.url + path, timeout=ANSWER_TIMEOUT_S, **{"verify": TLS, **kw})

    def anonymous_post(self, path: str, **kw) -> httpx.Response:
        return httpx.post(self.url + path, timeout=ANSWER_TIMEOUT_S, **{"verify": TLS, **kw})


class Peer:
    """A plain MQTT 5 client that records what it receives; tests read it in order."""

    def __init__(self, port: int, client_id: str | None = None) -> None:
        self.seen: list[tuple[str, bytes, bool]] = []
        self._log: list[mqtt.MQTTMessage] = []
        self._taken: set[int] = set()
        self._cond = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"peer-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_socket_open = _no_delay
        self.client.on_subscribe = self._on_subscribe
        self._acked: set[int] = set()
        self._connected = False
        self.client.on_connect = lambda *a: setattr(self, "_connected", True)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        wait_for(lambda: self._connected, 5, "peer connect")

    def _on_message(self, _c, _u, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.seen.append((msg.topic, msg.payload, bool(msg.retain)))
            self._log.append(msg)
            self._cond.notify_all()

    def _on_subscribe(self, _c, _u, mid, _codes, _props) -> None:
        with self._cond:
            self._acked.add(mid)
            self._cond.notify_all()

    def subscribe(self, *topics: str) -> None:
        """Subscribe and wait for the broker's SUBACK: from then on nothing published is missed."""
        mids = []
        for t in topics:
            result, mid = self.client.subscribe(t, qos=1)
            assert result == mqtt.MQTT_ERR_SUCCESS
            mids.append(mid)
        with self._cond:
            if not self._cond.wait_for(lambda: all(m in self._acked for m in mids), timeout=10):
                raise AssertionError(f"no SUBACK for {topics} within 10 s")

    def publish(self, topic: str, payload: Any, **kw) -> None:
        data = payload if isinstance(payload, bytes | str) else json.dumps(payload)
        self.client.publish(topic, data, qos=1, **kw).wait_for_publish(5)

    def take(self, match: Callable[[mqtt.MQTTMessage], bool], timeout: float, what: str) -> mqtt.MQTTMessage:
        """The oldest message not taken yet that ``match``es; waits up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, msg in enumerate(self._log):
                    if i not in self._taken and match(msg):
                        self._taken.add(i)
                        return msg
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {what} within {timeout}s")
                self._cond.wait(remaining)

    def expect(self, topic: str, timeout: float = 5.0, where: Callable[[dict], bool] | None = None) -> dict:
        """The oldest untaken JSON message on ``topic`` (matching ``where``)."""

        def match(msg: mqtt.MQTTMessage) -> bool:
            if not mqtt.topic_matches_sub(topic, msg.topic):
                return False
            try:
                data = json.loads(msg.payload)
            except ValueError:
                return False
            return where is None or where(data)

        return json.loads(self.take(match, timeout, f"message on {topic}").payload)

    def expect_raw(self, topic: str, timeout: float = 5.0) -> bytes:
        """The payload of the oldest untaken message on ``topic`` (plain text such as availability)."""
        return self.take(lambda m: mqtt.topic_matches_sub(topic, m.topic), timeout, f"message on {topic}").payload

    def latest(self, topic: str) -> dict | None:
        for t, payload, _r in reversed(self.seen):
            if t == topic:
                return json.loads(payload)
        return None

    def request(self, topic: str, payload: dict, response_topic: str, timeout: float = 5.0) -> dict:
        corr = uuid.uuid4().bytes
        self.client.publish(
            topic, json.dumps(payload), qos=1, properties=response_properties(response_topic, corr)
        ).wait_for_publish(5)

        def match(msg: mqtt.MQTTMessage) -> bool:
            props = getattr(msg, "properties", None)
            return msg.topic == response_topic and getattr(props, "CorrelationData", None) == corr

        return json.loads(self.take(match, timeout, f"response on {response_topic}").payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class VirtualScreen:
    """An Xvfb server on a free display number, for the Kivy apps (kiosk, display)."""

    def __init__(self, width: int = 1280, height: int = 720) -> None:
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write_fd)
        with os.fdopen(read_fd) as f:
            number = f.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.display}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
