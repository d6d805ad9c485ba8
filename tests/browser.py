"""Debian's Chromium for the page tests: one headless browser per pytest process, a fresh context per page.

Why one browser: the page tests started a Chromium each (about 1.2 s of CPU and 2-3 s on a busy
machine, before the page's first byte), some of them one per page. Now each pytest(-xdist) worker
starts one at its first page and keeps it; every page gets a browser context of its own
(``Target.createBrowserContext``: its own cookies, storage and cache, as a fresh profile has), thrown
away with the page, so no test sees another's login. A test that needs other command-line flags
(``--host-resolver-rules``) starts a browser of its own with :class:`Chromium`.

Tests use the ``chromium`` fixture (registered by tests/conftest.py)::

    def test_the_panel_shows_the_ticket(server, chromium):
        page = chromium.open(f"{server.url}/clerk/1", login=server.CLERK)
        try:
            wait_for(lambda: page.text("ticket") == "A001", 15, "the number")
        finally:
            page.close()

The driver speaks the DevTools protocol over ``--remote-debugging-pipe`` (NUL-separated JSON commands
on fd 3, answers and events on fd 4), so there is no extra library and no port to pick.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1280, 800)
ANSWER_TIMEOUT_S = 30.0
"""How long one DevTools command may take: a bound for a hung browser, not a speed check."""


class Chromium:
    """One headless Chromium process driven over the DevTools pipe."""

    def __init__(self, flags: tuple[str, ...] = ()) -> None:
        if CHROMIUM is None:
            raise RuntimeError("Debian's chromium is not installed (apt-get install chromium)")
        self._profile = tempfile.mkdtemp(prefix="numerek-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def give_fds() -> None:  # fd 3: commands in, fd 4: answers out (dup first: the pipes may be 3 or 4)
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                f"--user-data-dir={self._profile}",
                f"--window-size={WINDOW[0]},{WINDOW[1]}",
                "--hide-scrollbars",
                *flags,
                "about:blank",
            ],
            preexec_fn=give_fds,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._next_id = 0
        self._lock = threading.Lock()  # one command and its answer at a time
        self._closed = False

    @property
    def alive(self) -> bool:
        return not self._closed and self.proc.poll() is None

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command (to a page when ``session`` is given) and return its result."""
        with self._lock:
            self._next_id += 1
            wanted = self._next_id
            msg = {"id": wanted, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
            deadline = time.monotonic() + ANSWER_TIMEOUT_S
            while time.monotonic() < deadline:
                while b"\0" in self._buf:
                    raw, self._buf = self._buf.split(b"\0", 1)
                    answer = json.loads(raw)
                    if answer.get("id") == wanted:  # events and late answers are skipped
                        if "error" in answer:
                            raise AssertionError(f"{method}: {answer['error']}")
                        return answer["result"]
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise AssertionError("chromium closed the DevTools pipe")
                self._buf += chunk
            raise AssertionError(f"no answer to {method} within {ANSWER_TIMEOUT_S} s")

    def open(self, url: str, login: tuple[str, str] | None = None) -> Page:
        """A new page at ``url`` in a context of its own (no cookies, storage or cache of other pages).

        ``login``: the page is one that sends a browser without a session to the login form
        (the clerk panel); fill it in and send it, as a clerk would."""
        context = self.call("Target.createBrowserContext")["browserContextId"]
        target = self.call(
            "Target.createTarget",
            {"url": url, "browserContextId": context, "width": WINDOW[0], "height": WINDOW[1]},
        )["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, context, session)
        if login:
            try:
                page.sign_in(*login)
            except BaseException:
                page.close()
                raise
        return page

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.proc.poll() is None:
                self.call("Browser.close")
        except (AssertionError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        shutil.rmtree(self._profile, ignore_errors=True)


class Page:
    """One tab in a browser context of its own; :meth:`close` throws the context away."""

    def __init__(self, browser: Chromium, context: str, session: str) -> None:
        self.browser = browser
        self.context = context
        self.session = session

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """A DevTools command; pass ``page.session`` for the page's domains (Page, Runtime, Input…)."""
        return self.browser.call(method, params, session)

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, self.session)
        return result["result"].get("value")

    def text(self, element_id: str) -> str | None:
        return self.js(f"(document.getElementById({json.dumps(element_id)}) || {{}}).textContent")

    def click(self, action: str) -> None:
        """Click a clerk panel button like a person: once it is enabled (the page disables all while one is sent)."""
        button = f"document.querySelector('button[data-action={action}]')"
        wait_for(lambda: self.js(f"{button}.disabled") is False, 10, f"the {action} button enabled")
        self.js(f"{button}.click()")

    def sign_in(self, name: str, password: str) -> None:
        wait_for(
            lambda: self.js("!!document.querySelector('form[action=\"/login\"] input[name=password]')"),
            15,
            "the login form",
        )
        self.js(
            f"document.querySelector('input[name=name]').value = {json.dumps(name)};"
            f"document.querySelector('input[name=password]').value = {json.dumps(password)};"
            "document.querySelector('form[action=\"/login\"]').requestSubmit()"
        )
        wait_for(lambda: self.js("location.pathname").startswith("/clerk"), 15, "back on the panel after login")

    def screenshot(self, path: Path, full: bool = False) -> None:
        """A PNG of the viewport (``full``: of the whole page)."""
        params = {"format": "png", "captureBeyondViewport": True} if full else {"format": "png"}
        data = self.call("Page.captureScreenshot", params, self.session)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        if not self.browser.alive:
            return
        try:
            self.browser.call("Target.disposeBrowserContext", {"browserContextId": self.context})
        except (AssertionError, OSError):
            pass


_shared: Chromium | None = None


def shared() -> Chromium:
    """This process's browser: started at the first page, started again if it died."""
    global _shared
    if _shared is None or not _shared.alive:
        if _shared is not None:
            _shared.close()
        _shared = Chromium()
    return _shared


@pytest.fixture(scope="session")
def chromium() -> Iterator[SharedChromium]:
    """The worker's headless Chromium (skips the test where Debian's chromium is not installed).

    A session fixture hands out the same object all session, so it is a thin face: the browser
    itself is :func:`shared`, restarted on the next :meth:`Chromium.open` if a test killed it."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    yield SharedChromium()
    global _shared
    if _shared is not None:
        _shared.close()
        _shared = None


class SharedChromium:
    """What the ``chromium`` fixture gives: :func:`shared`'s browser, whichever process that is now."""

    def open(self, url: str, login: tuple[str, str] | None = None) -> Page:
        return shared().open(url, login)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        return shared().call(method, params, session)
