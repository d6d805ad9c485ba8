"""A Python process that has imported the server once; each test's server is a fork of it.

Why: a test server spent ~1.3 s of CPU importing FastAPI, pydantic, sqlite-utils and the server
before it read its config, and the suite starts hundreds of them on two cores. A fork of this
process skips that and runs the very same ``server.cli.main`` with the test's arguments, in its
own process with its own pid, log file, signals and exit code, as ``python -m server.cli`` would
(tests/harness.py's ``ServerProcess`` uses it only when the test gives no environment or folder of
its own: those servers are started with exec, as before).

Protocol (``python -m tests.server_zygote``, from tests/harness.py): stdin takes one JSON line per
server, ``{"argv": [...], "cwd": "...", "log": "..."}``; stdout answers ``started <pid>`` and, when
a server ends, ``exit <pid> <returncode> <cpu>`` (negative: the signal, as subprocess reports it; cpu:
the server's user + system CPU seconds, for tests/cpu_report.py).
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys


def preload() -> None:
    """What ``server.cli.main`` imports, at module level or inside it, and the report charts'
    matplotlib, which a server imports on its first chart (~1 s of CPU, 20 s at load 18); and what
    uvicorn, FastAPI (pydantic.v1, asked whether a route's model is one) and anyio import lazily while a
    server starts (0.1 s of each server's CPU: the new entries of ``sys.modules`` after a start)."""
    import anyio._backends._asyncio  # noqa: F401
    import pydantic.v1  # noqa: F401
    import uvicorn.lifespan.on  # noqa: F401
    import uvicorn.loops.asyncio  # noqa: F401
    import uvicorn.protocols.websockets.auto  # noqa: F401

    import server.booking.reception  # noqa: F401
    import server.cli  # noqa: F401
    import server.dbtool  # noqa: F401
    import server.http  # noqa: F401
    import server.httpserver  # noqa: F401
    import server.reports.charts  # noqa: F401
    import server.reports.monthly  # noqa: F401
    import server.service  # noqa: F401
    import server.store  # noqa: F401


def child(request: dict) -> None:
    """In the fork: become ``python -m server.cli <argv>`` (returns only by raising SystemExit)."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    os.chdir(request["cwd"])
    from server.cli import main

    sys.argv = [sys.modules["server.cli"].__file__ or "server/cli.py", *request["argv"]]
    raise SystemExit(main(request["argv"]))


def serve(run=child) -> None:
    """Fork ``run(request)`` for each request line (tests/device_zygote.py passes its own)."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    stdin = sys.stdin.buffer
    pending = b""
    while True:
        readable, _, _ = select.select([stdin.fileno(), wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
        while True:  # every child that ended
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            cpu = usage.ru_utime + usage.ru_stime
            out.write(f"exit {pid} {os.waitstatus_to_exitcode(status)} {cpu:.3f}\n")
            out.flush()
        if stdin.fileno() not in readable:
            continue
        chunk = os.read(stdin.fileno(), 65536)
        if not chunk:
            return  # the test process is gone: so is the point of this one
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            out.flush()
            pid = os.fork()
            if pid == 0:
                os.close(wake_r)
                os.close(wake_w)
                run(request)
            out.write(f"started {pid}\n")
            out.flush()


if __name__ == "__main__":
    preload()
    serve()
