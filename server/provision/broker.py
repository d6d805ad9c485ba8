"""The files Mosquitto reads, written atomically, and the broker told to re-read them.

Also numerek-provision's one way onto the broker: clearing what a revoked device left
retained, with a one-off account whose password exists only for that run.
"""

from __future__ import annotations

import grp
import os
import shlex
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from server.provision.accounts import PROVISION_USER, ProvisionError, Registry, render_passwd
from server.provision.acl import render_acl


def _owner_group() -> int | None:
    """Mosquitto drops to its own user: make its files group-readable by ``mosquitto``."""
    try:
        return grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        return None


def write_private(path: Path, text: str, mode: int = 0o600, gid: int | None = None, uid: int = 0) -> None:
    """Atomically replace ``path`` (readers never see half a file), with ``mode`` from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        if gid is not None and os.geteuid() == 0:
            os.fchown(fd, uid, gid)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(registry: Registry) -> None:
    """Registry first, then the files Mosquitto reads, each replaced atomically."""
    gid = _owner_group()
    base = registry.path.parent
    write_private(registry.path, registry.to_json(), 0o600)
    write_private(base / "passwd", render_passwd(registry), 0o640, gid)
    write_private(base / "acl", render_acl(registry), 0o640, gid)


def reload_broker(command: str | None, pid: int | None) -> str:
    """Ask Mosquitto to re-read the password file and ACL (SIGHUP); returns what was done."""
    if pid is not None:
        try:
            os.kill(pid, signal.SIGHUP)
        except OSError as exc:
            raise ProvisionError(f"files written, but could not signal the broker (pid {pid}): {exc}") from exc
        return f"sent SIGHUP to the broker (pid {pid})"
    if not command:
        return "broker not reloaded (--no-reload): run 'systemctl reload-or-restart mosquitto' to apply"
    try:
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProvisionError(f"files written, but '{command}' failed: {exc}") from exc
    if done.returncode != 0:
        raise ProvisionError(f"files written, but '{command}' failed: {done.stderr.strip() or done.returncode}")
    return f"broker reloaded ({command})"


def connect_and_clear(host: str, port: int, password: str, topics: list[str], wait: float) -> tuple[bool, str]:
    """Log in as the one-off ``provision`` account and delete ``topics``' retained messages.

    The password was made for this run, so a successful login also proves that Mosquitto
    has re-read its files: by then it has cut off the revoked device (and handled its last
    will), and nothing can put its "offline" back after the clear.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    deadline = time.monotonic() + wait
    last = "no answer"
    while True:
        state: dict[str, Any] = {"acks": {}}
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=PROVISION_USER, protocol=mqtt.MQTTv5)
        client.username_pw_set(PROVISION_USER, password)
        client.on_connect = lambda _c, _u, _f, rc, _p, s=state: s.update(connack=rc)
        client.on_publish = lambda _c, _u, mid, rc, _p, s=state: s["acks"].update({mid: rc})
        try:
            client.connect(host, port, keepalive=10)
            while "connack" not in state and time.monotonic() < deadline:
                client.loop(0.1)
        except OSError as exc:
            last = exc.strerror or str(exc)
        rc = state.get("connack")
        if rc is not None and not rc.is_failure:
            break
        if rc is not None:
            last = f"login refused ({rc})"
        client.disconnect()
        if time.monotonic() >= deadline:
            return False, f"broker at {host}:{port} not reachable: {last}"
        time.sleep(0.2)
    try:
        mids = {client.publish(t, b"", qos=1, retain=True).mid: t for t in topics}
        while len(state["acks"]) < len(mids) and time.monotonic() < deadline:
            client.loop(0.1)
    finally:
        client.disconnect()
    refused = [t for mid, t in mids.items() if mid not in state["acks"] or state["acks"][mid].is_failure]
    if refused:
        return False, f"the broker did not clear {', '.join(refused)}"
    return True, "cleared its retained " + ", ".join(topics)
