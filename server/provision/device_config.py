"""The config file each device gets: identity and credentials set, everything else kept.

Device config files are written and commented by people (the roles' examples, an office's
printer and pin settings), so they are edited with tomlkit, which keeps every comment and
the layout, and each result is parsed again and checked: an edit that went wrong is an
error, never a broken file. Only comment text (the example's "counter 1" heading, its
commented-out second counter) is handled line by line: TOML has no meaning for it.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Comment, Null, Table

from server.provision.accounts import Account, Broker, ProvisionError

Value = str | int | bool

MINIMAL = {
    "counter": '[mqtt]\n\n[unit]\n\n[[counters]]\nid = "1"\n',
    "kiosk": '[kiosk]\nid = "k1"\n\n[mqtt]\n',
    "display": '[display]\nid = "hall-1"\n\n[mqtt]\n',
    "monitor": "# For mosquitto_sub -h HOST -p PORT -u USERNAME -P PASSWORD -t 'numerek/#' -v\n[mqtt]\n",
    "replicator": "# numerek-replicate --account: its own broker account on this branch's broker.\n[mqtt]\n",
}
"""Used when the role's example is not installed: enough to carry identity and credentials."""

INSTALLED_BIN = "/opt/numerek/venv/bin"
"""Where systemd/install.sh puts the programs (``$venv/bin``); only numerek-provision is on PATH."""
EXAMPLE_PUBLIC_URL = "http://numerek.local:8080"
"""The kiosk example's placeholder: provisioning replaces it with the broker's host."""

_PROVISION_HEAD = re.compile(r"^# Numerek .*from numerek-provision")
_COUNTER_RULE = re.compile(r"^(# -{5,} counter )(\S+)(.*)$")
_COMMENTED_TOML = re.compile(r"^#\s?(\[\[?[A-Za-z0-9_.]+\]\]?(\s+#.*)?|[A-Za-z0-9_]+\s*=.*)$")


# --------------------------------------------------------------------------- TOML editing


def set_keys(text: str, table: str, values: dict[str, Value | None], index: int | None = None) -> str:
    """``text`` with keys of its top-level ``[table]`` set (``None`` removes a key), every comment kept.

    With ``index`` the keys of that ``[[table]]`` entry are set instead. A missing plain table
    is added at the end. A key already there keeps its place and its trailing comment; a
    commented-out example of it (``# username = "counter-1"``) becomes the real line; any
    other new key goes after the table's last key, before the comments that introduce the
    next table. A table written inline (``mqtt = { ... }``) or with dotted keys is refused.
    """
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ProvisionError(f"the TOML file is not valid: {exc}") from exc
    refused = ProvisionError(f"could not set [{table}] keys in the TOML file (is it a plain table?)")
    if table not in doc:
        if index is not None:
            raise refused
        doc.add(tomlkit.nl())
        doc.add(table, tomlkit.table())
    target: Any = doc[table]
    if index is not None:
        if not isinstance(target, AoT) or len(target) <= index:
            raise refused
        target = target[index]
    if not isinstance(target, Table) or target.is_super_table():
        raise refused
    for key, value in values.items():
        _put(target, key, value)
    result = tomlkit.dumps(doc)
    try:
        section: Any = tomllib.loads(result)[table]
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise ProvisionError(f"could not set [{table}] keys in the TOML file: {exc}") from exc
    if index is not None:
        section = section[index]
    for key, value in values.items():
        if section.get(key) != value:
            raise refused
    return result


def _put(table: Table, key: str, value: Value | None) -> None:
    container = table.value
    if value is None:
        if key in table:
            del table[key]
        return
    if key in table:
        table[key] = value  # tomlkit keeps the line's place and its comment
        return
    body = container.body
    example = re.compile(rf"^#\s*{re.escape(key)}\s*=")
    for i, (k, item) in enumerate(body):
        if k is None and isinstance(item, Comment) and example.match(item.as_string().strip()):
            # tomlkit has no public "insert at": these two private calls are what its own
            # insert and remove do (pinned by tests/test_provision_cli.py).
            container._insert_at(i, key, value)
            body[i + 1] = (None, Null())
            return
    last = max((i for i, (k, _item) in enumerate(body) if k is not None), default=-1)
    if 0 <= last < len(body) - 1:
        container._insert_at(last + 1, key, value)  # before the next table's introducing comments
    else:
        table[key] = value


def _role_example(role: str) -> str:
    """The role's commented example config (``<role>/examples/<role>.toml``), found without importing it."""
    spec = importlib.util.find_spec(role)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "examples" / f"{role}.toml"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return MINIMAL[role]


def check_command(role: str) -> str:
    """The config check to run on the device, as install.sh installs it.

    As the service user, because the installed file is root:numerek 0640 (an admin's own
    login cannot read it), and by full path, because install.sh puts only numerek-provision
    on PATH.
    """
    return f"sudo -u numerek {INSTALLED_BIN}/numerek-{role} --config /etc/numerek/{role}.toml --check"


def _strip_heading(text: str) -> str:
    """``text`` without the comment block an earlier numerek-provision run put on top."""
    lines = text.splitlines()
    if lines and _PROVISION_HEAD.match(lines[0]):
        end = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
        lines = lines[end:]
    return "\n".join(lines).lstrip("\n") + "\n"


def _counter_blocks(text: str, ids: list[str]) -> tuple[str, list[str]]:
    """The example's counter sections made this unit's: a ``[[counters]]`` block per id.

    The first block gets the first id, and its heading rule ("counter 1") and name hint
    follow. The example's commented second counter ("counter 2 (same Pi)", with pins of its
    own) becomes the real block of the second id. Returns the text and the ids that still
    have no block (the example has templates for two), for the heading to name.
    """
    text = set_keys(text, "counters", {"id": ids[0]}, index=0)
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if _COUNTER_RULE.match(line)]
    if rules:
        first = rules[0]
        lines[first] = _COUNTER_RULE.sub(lambda m: f"{m.group(1)}{ids[0]}", lines[first])
        stop = rules[1] if len(rules) > 1 else len(lines)
        for i in range(first, stop):
            lines[i] = re.sub(r'^(# name = ")Stanowisko \S+(")', rf"\g<1>Stanowisko {ids[0]}\g<2>", lines[i])
    missing = ids[1:]
    if len(ids) > 1 and len(rules) > 1:
        second = rules[1]
        body = lines[second + 1 :]
        rule = _COUNTER_RULE.match(lines[second])
        if rule and any(_COMMENTED_TOML.match(line) for line in body):
            out = [
                f"{rule.group(1)}{ids[1]} (same Pi)",
                "# Driven from this Pi too: pins of its own, its LCD at another I2C address",
                "# (solder A0 on the second backpack: 0x26).",
            ]
            started = False
            for line in body:  # the commented-out block, uncommented
                m = _COMMENTED_TOML.match(line)
                if m:
                    started = True
                    out.append(m.group(1))
                elif started:
                    out.append(line)
            try:
                candidate = set_keys("\n".join(lines[:second] + out) + "\n", "counters", {"id": ids[1]}, index=1)
                counters = tomllib.loads(candidate).get("counters", [])
            except (ProvisionError, tomllib.TOMLDecodeError):
                counters = []
            if [c.get("id") for c in counters] == ids[:2]:
                lines, missing = candidate.splitlines(), ids[2:]
    return "\n".join(lines) + "\n", missing


def _counter_ids_in(text: str, account: Account) -> list[str]:
    """The ids of an existing counter config's blocks, refused if the account may not command one."""
    counters = tomllib.loads(text).get("counters", [])
    found = [str(c.get("id")) for c in counters if isinstance(c, dict)] if isinstance(counters, list) else []
    foreign = [cid for cid in found if cid not in account.ids]
    if foreign:
        raise ProvisionError(
            f"the existing config drives counter(s) {', '.join(foreign)}, which {account.username} may not command; "
            f"provision the unit for all of them ('add counter {' '.join(sorted(set(account.ids) | set(found)))}') "
            "or remove those blocks"
        )
    return found


def _mqtt_section_named_mqtt(text: str) -> str:
    """Counter files once called ``[mqtt]`` ``[broker]``: an old file gets the common name."""
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ProvisionError(f"the TOML file is not valid: {exc}") from exc
    if "broker" not in doc or "mqtt" in doc:
        return text
    return re.sub(r"(?m)^\[broker\](?=\s*(#.*)?$)", "[mqtt]", text, count=1)


def file_password(text: str) -> str | None:
    """The broker password a device config file holds (``[mqtt]``, or an old counter's ``[broker]``)."""
    data = tomllib.loads(text)
    table = data.get("mqtt", data.get("broker", {}))
    value = table.get("password") if isinstance(table, dict) else None
    return value if isinstance(value, str) else None


def render_device_config(account: Account, broker: Broker, password: str, existing: str | None = None) -> str:
    """The device's own config file: identity and credentials set, everything else kept.

    Without ``existing`` it starts from the role's example, whose comments (pins, printer,
    screen options) guide whoever finishes the file. With ``existing`` (the device's config
    as the office finished it) only what provisioning owns is changed: the broker address,
    port, TLS CA, topic base, username and password, and the device's ids and zone. So a new
    password or a move to TLS never costs the office its printer, pins or screen settings.
    """
    role, ids = account.role, account.ids
    credentials: dict[str, Value | None] = {
        "host": broker.host,
        "port": broker.port,
        "username": account.username,
        "password": password,
        "tls_ca": broker.tls_ca,
        "topic_base": broker.topic_base,
    }
    if existing is not None:
        try:
            tomllib.loads(existing)
        except tomllib.TOMLDecodeError as exc:
            raise ProvisionError(f"the existing config of {account.username} is not valid TOML: {exc}") from exc
        text = _strip_heading(existing)
    else:
        text = _role_example(role) if role not in ("monitor", "replicator") else MINIMAL[role]
    missing: list[str] = []
    if role == "counter":
        text = set_keys(_mqtt_section_named_mqtt(text), "mqtt", credentials)
        text = set_keys(text, "unit", {"device": account.username})
        if existing is None:
            text, missing = _counter_blocks(text, ids)
        else:
            found = _counter_ids_in(text, account)
            missing = [cid for cid in ids if cid not in found]
    elif role == "kiosk":
        kiosk: dict[str, Value | None] = {"id": ids[0]}
        kept = tomllib.loads(text).get("kiosk", {}).get("public_url") if existing is not None else None
        if kept is None or kept == EXAMPLE_PUBLIC_URL:  # the example's placeholder would print dead QR codes
            kiosk["public_url"] = broker.phones_url()
        text = set_keys(text, "kiosk", kiosk)
        text = set_keys(text, "mqtt", credentials)
    elif role == "display":
        text = set_keys(text, "display", {"id": ids[0], "zone": account.zones[0]})
        text = set_keys(text, "mqtt", credentials)
    else:
        text = set_keys(text, "mqtt", credentials)
    # The example's own "check it with numerek-<role> --config <role>.toml --check" is for a
    # copy in the current directory; on the device the command is the installed one.
    text = re.sub(
        rf"(?m)^#(\s+)numerek-{role} --config \S+ --check\s*$", lambda m: f"#{m.group(1)}{check_command(role)}", text
    )
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = [f"# Numerek {role} {', '.join(ids)} ({account.username}), from numerek-provision, {now}."]
    if role == "monitor":
        head.append("# A read-only account for watching all Numerek traffic. Keep this file private.")
    elif role == "replicator":
        head += [
            "# Install on the branch server as /etc/numerek/replicator.toml, owner root:numerek, mode 0640;",
            "# numerek-replicate signs in with it when given --account /etc/numerek/replicator.toml",
            "# (docs/multi-branch.md). It holds the replicator's broker password: keep it private.",
        ]
    else:
        head += [
            f"# Install on the device as /etc/numerek/{role}.toml, owner root:numerek, mode 0640, then check it:",
            f"#   {check_command(role)}",
            "# It holds this device's broker password: do not copy it to another device.",
        ]
    if missing:
        head.append(
            f"# This unit may also command counter(s) {', '.join(missing)}: add a [[counters]] block for each "
            "(pins and LCD address of its own)."
        )
    return "\n".join(head) + "\n\n" + text.lstrip("\n")
