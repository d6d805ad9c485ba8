"""The move to TLS: device config files rewritten for new broker settings, nothing else lost.

``numerek-provision init --port 8883 --tls-ca /etc/numerek/ca.crt`` changes how devices reach
the broker; ``reissue`` then writes every device's file for it, keeping its printer, pins,
screen settings and, while the file still holds it, its password, so a device keeps working
on the old listener until its new file is installed (docs/deployment.md, section 7).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from server.provision.accounts import ROLES, ProvisionError, Registry, check_password, hash_password, new_password
from server.provision.broker import save, write_private
from server.provision.device_config import file_password, render_device_config


def reissue(registry: Registry, names: list[str], every: bool, config_dir: Path) -> str:
    """Rewrite device config files for the broker settings of ``init`` (TLS, host, port), keeping the rest.

    This is the step that moves an office to TLS: every device kind (a display with its zone,
    a unit with several counters) gets its file with the new port and CA, and keeps its
    printer, pins, screen settings and, while the file still holds it, its password, so a
    device keeps working on the old listener until its new file is installed.
    """
    devices = [n for n, a in sorted(registry.accounts.items()) if a.role in ROLES]
    if every == bool(names):
        raise ProvisionError("name the accounts to reissue (e.g. 'reissue counter-1 display-hall-1') or give --all")
    names = devices if every else names
    for name in names:
        if name not in registry.accounts:
            raise ProvisionError(f"no account {name!r} (known: {', '.join(sorted(registry.accounts)) or 'none'})")
        if name not in devices:
            raise ProvisionError(
                f"{name} is not a device: the server's account lives in its site config and it reaches the "
                "broker on its own machine"
            )
    if not names:
        raise ProvisionError("no device accounts yet: nothing to reissue")
    missing = [n for n in names if not (config_dir / f"{n}.toml").is_file()]
    if missing:
        first = missing[0]
        role = registry.accounts[first].role
        raise ProvisionError(
            f"no saved config for {', '.join(missing)} in {config_dir}, so its settings cannot be kept; fetch the "
            f"device's own file first, e.g. ssh admin@<device> sudo cat /etc/numerek/{role}.toml | "
            f"sudo sh -c 'umask 077; cat > {config_dir / first}.toml' (or 'add ... --replace --from FILE')"
        )
    results: list[tuple[Path, str]] = []
    lines = []
    b = registry.broker
    where = f"{b.host}:{b.port}" + (f" with TLS (CA {b.tls_ca} on the device)" if b.tls_ca else " without TLS")
    for name in names:
        account = registry.accounts[name]
        path = config_dir / f"{name}.toml"
        try:
            text = path.read_text(encoding="utf-8")
            password = file_password(text)
        except OSError as exc:
            raise ProvisionError(f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ProvisionError(f"{path} is not valid TOML: {exc}") from exc
        if password is not None and check_password(password, account.password_hash):
            note = "password kept"
        else:
            password = new_password()
            account.password_hash = hash_password(password)
            note = "NEW password (the file's was not the account's): the device needs this file to log in"
        results.append((path, render_device_config(account, b, password, text)))
        lines.append(f"{name}: {path} now for {where}; settings and {note}")
    for path, text in results:
        write_private(path, text, 0o600)
    save(registry)
    return "\n".join(lines + ["copy each file to its device as /etc/numerek/<role>.toml and restart its unit"])
