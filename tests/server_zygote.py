"""A Python process that has imported the server once; each test's server is a fork of it.

Why: a test server spent ~1.3 s of CPU importing FastAPI, pydantic, sqlite-utils and the server
before it read its config, and the suite starts hundreds of them on two cores. A fork of this
process skips that and runs the very same ``server.cli.main`` with the test's arguments, in its
own process with its own pid, log file, signals and exit code, as ``python -m server.cli`` would
(tests/harness.py's ``ServerProcess`` uses it only when the test gives no environment or folder of
its own: those servers are started with exec, as before).

The command-line tools the tests run as ``python -m <module>`` (the monthly report mail, the
simulator, ``numerek-users``, the roles' ``--check``) are forked from it too: a fork runs the module as
``python -m`` does (``runpy``, as ``__main__``, ``sys.argv`` set), its stdin, stdout and stderr files the
test's, its exit status the tool's own — ~1.5 s of CPU less per run (tests/harness.py ``run_tool``).

Protocol (``python -m tests.server_zygote``, from tests/harness.py): stdin takes one JSON line per
server, ``{"argv": [...], "cwd": "...", "log": "..."}``, or per tool, ``{"module": "...", "argv": [...],
"cwd": "...", "stdin": "...", "stdout": "...", "stderr": "...", "append": false}`` (``"script"``
instead of ``"module"``: a script file run as ``python <script>``)
(``append``: a log the tool adds to, as ``open(log, "ab")``); stdout
answers ``started <pid>`` and, when a server or tool ends, ``exit <pid> <returncode> <cpu>`` (negative:
the signal, as subprocess reports it; cpu: its user + system CPU seconds, for tests/cpu_report.py).
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys


def preload() -> None:
    """What ``server.cli.main`` imports, at module level or inside it, and the report charts'
    matplotlib, which a server imports on its first chart (~1 s of CPU, 20 s at load 18); and what
    uvicorn, FastAPI (pydantic.v1, asked whether a route's model is one) and anyio import lazily while a
    server starts (0.1 s of each server's CPU: the new entries of ``sys.modules`` after a start). And
    what the tools the tests run import (``tool``): the monthly report mail's SMTP gateway and XLSX
    writer, the simulator, ``numerek-users``, ``numerek-provision``, the roles' ``--check`` (no Kivy:
    it reads its settings from the environment when imported)."""
    import anyio._backends._asyncio  # noqa: F401
    import openpyxl  # noqa: F401
    import pydantic.v1  # noqa: F401
    import uvicorn.lifespan.on  # noqa: F401
    import uvicorn.loops.asyncio  # noqa: F401
    import uvicorn.protocols.websockets.auto  # noqa: F401

    import central.ingest  # noqa: F401
    import counter.cli  # noqa: F401
    import display.cli  # noqa: F401
    import kiosk.cli  # noqa: F401
    import notify.gateways.smtp  # noqa: F401
    import server.auth  # noqa: F401
    import server.booking.reception  # noqa: F401
    import server.cli  # noqa: F401
    import server.dbtool  # noqa: F401
    import server.http  # noqa: F401
    import server.httpserver  # noqa: F401
    import server.provision  # noqa: F401
    import server.replicate  # noqa: F401
    import server.reports.charts  # noqa: F401
    import server.reports.mail  # noqa: F401
    import server.reports.monthly  # noqa: F401
    import server.service  # noqa: F401
    import server.simulate  # noqa: F401
    import server.store  # noqa: F401


def settle(cwd: str, stdin: str, stdout: str, stderr: str, append: bool) -> None:
    """In a fork: the signals as a new interpreter has them, its standard streams on these files
    (``append``: added to, as a log; else written anew), and its working folder."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    written = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    opened: dict[tuple[str, int], int] = {}  # a log taking stdout and stderr is opened once
    for fd, key in enumerate(((stdin, os.O_RDONLY), (stdout, written), (stderr, written))):
        if key not in opened:
            opened[key] = os.open(key[0], key[1], 0o644)
        os.dup2(opened[key], fd)
    for kept in opened.values():
        os.close(kept)
    os.chdir(cwd)


def child(request: dict) -> None:
    """In the fork: become ``python -m server.cli <argv>`` (returns only by raising SystemExit)."""
    settle(request["cwd"], os.devnull, request["log"], request["log"], append=True)
    from server.cli import main

    sys.argv = [sys.modules["server.cli"].__file__ or "server/cli.py", *request["argv"]]
    raise SystemExit(main(request["argv"]))


def tool(request: dict) -> None:
    """In the fork: become ``python -m <module> <argv>``, or ``<script> <argv>`` for a script such as
    the venv's ``bin/numerek-provision`` (returns only by raising SystemExit).

    ``runpy.run_module(..., run_name="__main__", alter_sys=True)`` is what ``python -m`` runs: the
    module's code as ``__main__`` with ``sys.argv[0]`` its file; ``runpy.run_path`` what ``python
    <script>`` runs, with the script's folder first on ``sys.path``. An uncaught exception ends the fork
    as it ends an interpreter (the traceback on stderr, status 1); ``SystemExit`` gives the tool's status."""
    stdin = request.get("stdin") or os.devnull
    settle(request["cwd"], stdin, request["stdout"], request["stderr"], append=bool(request.get("append")))
    import runpy
    import warnings

    # The zygote imported the module already (a real ``python -m`` finds it imported only when its
    # package imports it); later imports of it get that copy, as they get the first copy in a real run.
    warnings.filterwarnings("ignore", r"'[\w.]+' found in sys.modules after import of package", RuntimeWarning)
    try:
        if "script" in request:
            sys.argv = [request["script"], *request["argv"]]
            sys.path[0] = os.path.dirname(os.path.realpath(request["script"]))
            runpy.run_path(request["script"], run_name="__main__")
        else:
            sys.argv = [request["module"], *request["argv"]]  # runpy puts the module's file first
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    raise SystemExit(0)


def serve(run=child) -> None:
    """Fork ``run(request)`` for each request line (tests/device_zygote.py passes its own), or
    ``tool(request)`` for a tool's request (tests/harness.py ``run_tool``)."""
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
                if request.get("tool"):
                    tool(request)
                run(request)
            out.write(f"started {pid}\n")
            out.flush()


if __name__ == "__main__":
    preload()
    # What the zygote imported lives as long as every fork: out of the collector's walks (as the
    # server's own gcpolicy does after its start). A fork's collections and its exit otherwise walked
    # it all, copying the zygote's pages: 0.56 s of CPU per tool run, 0.11 s with it (counter --check).
    gc.freeze()
    serve()
