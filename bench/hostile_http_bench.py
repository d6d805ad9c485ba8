"""Hostile HTTP clients against the real server: what they cost it, measured.

    .venv/bin/python bench/hostile_http_bench.py logins
    .venv/bin/python bench/hostile_http_bench.py halfopen --sockets 1100 --hold 40
    .venv/bin/python bench/hostile_http_bench.py body --mb 150
    .venv/bin/python bench/hostile_http_bench.py argon2          # time per password check

Everything real: Debian's mosquitto on a free loopback port and ``numerek-server`` as a
subprocess, started with the file-descriptor limit systemd gives a unit that sets none
(soft 1024) unless ``--server-nofile`` says otherwise. The server's memory is read from
``/proc/<pid>/status`` every 20 ms while the clients run (``peak`` is the highest VmRSS
seen; ``VmHWM`` the kernel's own high-water mark since start).

* **logins** — 100 parallel wrong passwords through the login form (from 127.0.0.2), then
  100 through HTTP Basic on a clerk API (from 127.0.0.3), while a resident's phone asks
  ``/api/queues`` from 127.0.0.1 in a loop: the server's memory, how many guesses were
  really checked (401) and how many were refused before any hashing (429 throttled, 503
  busy), and the slowest ``/api/queues``.
* **halfopen** — N slow connections (each sends the first line of a request, never the
  rest: tests/test_hostile_http.py's ``open_half``), from 127.0.0.2... (``--per-address``
  from each), held for ``--hold`` seconds while ``/health`` is asked every 5 s from
  127.0.0.1; how many answered, and how many lines the server logged.
* **body** — one unauthenticated POST of ``--mb`` MB to the counter-command API (with a
  Content-Length, then chunked): the answer and the server's memory.
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import Broker, ServerProcess, free_port, write_config  # noqa: E402
from tests.test_hostile_http import open_half  # noqa: E402


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class MemoryWatch:
    """Samples a process's VmRSS every 20 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_kib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def start(tmp: Path, nofile: int) -> tuple[Broker, ServerProcess]:
    broker = Broker(tmp).start()
    cfg = write_config(tmp / "office.toml", broker.port, free_port())
    port = int(cfg.read_text().split("[http]")[1].split("port = ")[1].split()[0])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile, hard), hard))  # the child inherits it
    try:
        server = ServerProcess(cfg, http_port=port).start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this process needs many sockets
    return broker, server


TLS_CONTEXT = ssl.create_default_context()


def client_from(address: str, **kw) -> httpx.Client:
    # One TLS context for all (plain HTTP here): making one per client costs the CPU the server needs.
    transport = httpx.HTTPTransport(local_address=address, verify=TLS_CONTEXT)
    return httpx.Client(transport=transport, timeout=120, **kw)


def queues_prober(url: str, stop: threading.Event, times: list[float]) -> None:
    with httpx.Client(timeout=120) as c:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                c.get(url + "/api/queues")
                times.append(time.perf_counter() - t0)
            except httpx.HTTPError:
                times.append(float("inf"))
            time.sleep(0.05)


def parallel(n: int, job) -> list:
    codes: list = []
    barrier = threading.Barrier(n)

    def run() -> None:
        barrier.wait()
        try:
            codes.append(job())
        except httpx.HTTPError as exc:
            codes.append(type(exc).__name__)  # type: ignore[arg-type]

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


def why(r: httpx.Response) -> str:
    """The status, and for a 503 whether the connection or the password check was refused."""
    if r.status_code == 503:
        return "503 (connections)" if "too many connections" in r.text else "503 (checks)"
    return str(r.status_code)


def tally(codes: list) -> str:
    return ", ".join(f"{c}: {codes.count(c)}" for c in sorted(set(codes), key=str))


def bench_logins(server: ServerProcess) -> None:
    pid = server.proc.pid
    print(f"server RSS at rest: {rss_kib(pid) / 1024:.0f} MiB (VmHWM since start {rss_kib(pid, 'VmHWM') / 1024:.0f})")
    stop, times = threading.Event(), []
    prober = threading.Thread(target=queues_prober, args=(server.url, stop, times))
    prober.start()
    time.sleep(0.5)

    def form() -> int:
        with client_from("127.0.0.2") as c:
            r = c.post(server.url + "/login", data={"name": "test-clerk", "password": "wrong-password-1"})
            return why(r)

    def basic() -> int:
        token = base64.b64encode(b"nobody:wrong-password-2").decode()
        with client_from("127.0.0.3") as c:
            return why(c.get(server.url + "/api/counters/1", headers={"Authorization": "Basic " + token}))

    for name, job in (("form", form), ("basic", basic)):
        watch = MemoryWatch(pid)
        times.clear()
        t0 = time.perf_counter()
        codes = parallel(100, job)
        took = time.perf_counter() - t0
        peak = watch.stop()
        slow = max(times) if times else float("nan")
        print(
            f"{name}: 100 parallel wrong logins in {took:.1f} s -> {tally(codes)}; "
            f"server RSS peak {peak / 1024:.0f} MiB, after {rss_kib(pid) / 1024:.0f} MiB; "
            f"/api/queues during: {len(times)} answers, median {statistics.median(times) * 1000:.0f} ms, "
            f"slowest {slow * 1000:.0f} ms"
        )
    stop.set()
    prober.join()


def bench_halfopen(server: ServerProcess, sockets: int, hold: float, per_address: int) -> None:
    log_before = len(server.log().splitlines())
    held = open_half(server.http_port, sockets, per_address)
    print(f"opened {len(held)} slow connections from {1 + (sockets - 1) // per_address} addresses")
    answers = []
    t_end = time.monotonic() + hold
    while time.monotonic() < t_end:
        t0 = time.perf_counter()
        try:
            r = httpx.get(server.url + "/health", timeout=5)
            answers.append((r.status_code, time.perf_counter() - t0))
        except httpx.HTTPError as exc:
            answers.append((type(exc).__name__, time.perf_counter() - t0))
        time.sleep(max(0.0, 5 - (time.perf_counter() - t0)))
    closed_by_server = 0
    for s in held:
        try:
            s.recv(4096)  # an answer (503 refused, 408 too slow) or the end: the server let go of it
            closed_by_server += 1
        except BlockingIOError:
            pass  # still open, nothing said
        except OSError:
            closed_by_server += 1
        s.close()
    lines = server.log().splitlines()[log_before:]
    print(f"/health from 127.0.0.1 every 5 s for {hold:.0f} s: " + ", ".join(f"{c} ({t:.2f} s)" for c, t in answers))
    print(f"connections the server had closed by the end: {closed_by_server}")
    print(f"server log lines meanwhile: {len(lines)}")
    for line in lines[:8]:
        print("   ", line[:160])


def bench_body(server: ServerProcess, mb: int) -> None:
    pid = server.proc.pid
    for framing in ("content-length", "chunked"):
        before = rss_kib(pid)
        watch = MemoryWatch(pid)
        s = socket.create_connection(("127.0.0.1", server.http_port))
        head = "POST /api/counters/1/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        head += (
            f"Content-Length: {mb * 1_000_000}\r\n\r\n"
            if framing == "content-length"
            else "Transfer-Encoding: chunked\r\n\r\n"
        )
        s.sendall(head.encode())
        chunk = b"[" + b"1," * 32767 + b"1"
        sent = 0
        t0 = time.perf_counter()
        try:
            while sent < mb * 1_000_000:
                piece = chunk if framing == "content-length" else b"%x\r\n%s\r\n" % (len(chunk), chunk)
                s.sendall(piece)
                sent += len(chunk)
            if framing == "chunked":
                s.sendall(b"0\r\n\r\n")
        except OSError as exc:
            print(f"  ({framing}) the server stopped reading after {sent / 1e6:.1f} MB: {exc}")
        s.settimeout(120)
        try:
            answer = s.recv(200).split(b"\r\n")[0].decode()
        except OSError as exc:
            answer = repr(exc)
        s.close()
        peak = watch.stop()
        print(
            f"{framing}: {mb} MB POST -> {answer!r} after {time.perf_counter() - t0:.1f} s; "
            f"server RSS {before / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB, after {rss_kib(pid) / 1024:.0f} MiB"
        )


def bench_argon2(runs: int) -> None:
    from argon2 import PasswordHasher

    from server import auth

    params = getattr(auth, "ARGON2", None)
    hashers = {"argon2-cffi default (m=64 MiB, t=3, p=4)": PasswordHasher()}
    if params is not None:
        hashers[f"numerek (m={params.memory_cost // 1024} MiB, t={params.time_cost}, p={params.parallelism})"] = (
            auth.HASHER
        )
    for name, hasher in hashers.items():
        h = hasher.hash("a-password-to-check")
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            hasher.verify(h, "a-password-to-check")
            times.append(time.perf_counter() - t0)
        print(f"{name}: median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over {runs}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("logins", "halfopen", "body", "argon2"))
    p.add_argument("--sockets", type=int, default=1100)
    p.add_argument("--hold", type=float, default=40)
    p.add_argument("--per-address", type=int, default=50, help="half-open connections from each address")
    p.add_argument("--mb", type=int, default=150)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--server-nofile", type=int, default=1024, help="the server's RLIMIT_NOFILE (systemd's default)")
    args = p.parse_args()
    if args.what == "argon2":
        bench_argon2(args.runs)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        broker, server = start(Path(tmp), args.server_nofile)
        try:
            print(
                f"server pid {server.proc.pid}, nofile {Path(f'/proc/{server.proc.pid}/limits').read_text().split('Max open files')[1].split()[:2]}"
            )
            if args.what == "logins":
                bench_logins(server)
            elif args.what == "halfopen":
                bench_halfopen(server, args.sockets, args.hold, args.per_address)
            else:
                bench_body(server, args.mb)
        finally:
            server.stop()
            broker.stop()
    return 0


if __name__ == "__main__":
    os.nice(5)
    raise SystemExit(main())
