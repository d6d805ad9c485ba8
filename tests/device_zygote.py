"""A Python process that has imported the Kivy device apps once; each test's kiosk or display is a fork of it.

Why: a kiosk or hall display spent ~0.75 s of CPU importing pydantic, the protocol, python-escpos and
Kivy before it read its config (about 60 starts in the Kivy tests, on two cores). A fork of this
process runs the very same ``kiosk.cli.main`` / ``display.cli.main`` with the test's arguments and
environment, in its own process with its own pid, log, signals and exit code, as ``python -m
kiosk.cli`` would (tests/harness.py ``start_app``; ``NUMEREK_TEST_EXEC=1`` starts them with exec).

What is safe to import before the fork, and what is not: ``import kivy`` reads ``KIVY_HOME`` and the
``KIVY_*`` switches once, so this process sets them as the apps do (its own ``KIVY_HOME``, from
tests/harness.py); the window (``kivy.core.window``: the X display, the GL context) and the modules
that import it (``kiosk.app``, ``display.app``) are imported by each fork, after it took the test's
environment (``DISPLAY``, the display's probe folder). No thread runs here before a fork.

Protocol: as tests/server_zygote.py, with ``"module"`` and ``"env"`` in each request.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading

from tests.server_zygote import serve, settle

APPS = ("kiosk.cli", "display.cli")


def preload() -> None:
    """What the apps import before their window: their configs and models, the protocol, escpos'
    printer database, and Kivy's modules that do not open the window (it would open on no display)."""
    import kivy.app  # noqa: F401
    import kivy.core.image  # noqa: F401
    import kivy.core.text  # noqa: F401
    import kivy.lang  # noqa: F401
    import kivy.uix.boxlayout  # noqa: F401
    import kivy.uix.button  # noqa: F401
    import kivy.uix.floatlayout  # noqa: F401
    import kivy.uix.gridlayout  # noqa: F401
    import kivy.uix.image  # noqa: F401
    import kivy.uix.label  # noqa: F401
    import kivy.uix.stencilview  # noqa: F401
    import PIL.Image
    import qrcode  # noqa: F401

    import display.board  # noqa: F401
    import display.cli  # noqa: F401
    import display.config  # noqa: F401
    import display.texts  # noqa: F401
    import hardware.audio  # noqa: F401
    import hardware.printer
    import kiosk.cli  # noqa: F401
    import kiosk.link  # noqa: F401
    import kiosk.texts  # noqa: F401
    import kiosk.visit  # noqa: F401
    import protocol.device  # noqa: F401

    hardware.printer._import_capabilities()
    PIL.Image.init()  # its plugins, which Kivy asks for the formats it can save (the display's screenshots)
    assert "kivy.core.window" not in sys.modules, "the window must be opened by each fork, on its test's display"
    assert threading.active_count() == 1, "a thread before fork"


def child(request: dict) -> None:
    """In the fork: become ``python -m <module> <argv>`` in the test's environment."""
    settle(request["cwd"], os.devnull, request["log"], request["log"], append=True)
    os.environ.clear()
    os.environ.update(request["env"])
    if request["module"] not in APPS:
        raise SystemExit(f"tests/device_zygote.py runs {', '.join(APPS)}, not {request['module']}")
    module = importlib.import_module(request["module"])
    sys.argv = [module.__file__ or request["module"], *request["argv"]]
    raise SystemExit(module.main(request["argv"]))


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):  # Kivy prints its config upgrade; stdout is the protocol
        preload()
    serve(child)
