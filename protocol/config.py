"""One way to read a role's TOML config file, and one error for everything that can go wrong.

Why one loader: the server, kiosk, counter and display each read a small TOML file and
validate it with their pydantic model. Done four times, the four said four different things
about the same mistake (and the kiosk printed a traceback for a directory). Here every
problem is one line that names the file, the field and what is wrong::

    /etc/numerek/kiosk.toml: is a directory, not a config file
    /etc/numerek/kiosk.toml: no such file
    /etc/numerek/kiosk.toml: not valid TOML: Expected '=' after a key in a key/value pair (at line 3, column 7)
    /etc/numerek/kiosk.toml: mqtt.port: Input should be less than or equal to 65535

A role's ``load_config`` calls :func:`load`, then checks what the model cannot (files that
must exist, paths relative to the config file) and reports those with :func:`problem`.
Standard library and pydantic only: imported by every role.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config file that cannot be used. ``str()`` is one line per problem, each naming the
    file and, where there is one, the field (``file: field: problem``)."""

    def __init__(self, source: str | Path, problems: list[tuple[str, str]]) -> None:
        self.source = str(source)
        self.problems = problems
        super().__init__("\n".join(f"{self.source}: {where + ': ' if where else ''}{what}" for where, what in problems))


def problem(source: str | Path, field: str, what: str) -> ConfigError:
    """One problem with one field (``""`` for the file as a whole)."""
    return ConfigError(source, [(field, what)])


def read_toml(path: str | Path) -> dict[str, Any]:
    """The file's TOML as a dict; every way it cannot be read is a :class:`ConfigError`."""
    p = Path(path)
    if p.is_dir():
        raise problem(p, "", "is a directory, not a config file")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise problem(p, "", "no such file") from None
    except UnicodeDecodeError:
        raise problem(p, "", "not UTF-8 text") from None
    except OSError as exc:
        raise problem(p, "", f"cannot read: {exc.strerror or exc}") from None
    return parse_toml(text, p)


def parse_toml(text: str, source: str | Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise problem(source, "", f"not valid TOML: {' '.join(str(exc).split())}") from None


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _what(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return " ".join(message.split())


def validate(model: type[M], data: dict[str, Any], source: str | Path) -> M:
    """``data`` validated with ``model``; a :class:`ConfigError` lists every invalid field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [(_where(e["loc"]), _what(e)) for e in exc.errors()]) from None


def load(
    path: str | Path, model: type[M], prepare: Callable[[dict[str, Any], Path], dict[str, Any]] | None = None
) -> M:
    """Read ``path`` and validate it with ``model``.

    ``prepare`` may rewrite the raw table first (e.g. accept an old section name), with the
    file's path for its messages.
    """
    p = Path(path)
    data = read_toml(p)
    if prepare is not None:
        data = prepare(data, p)
    return validate(model, data, p)


def languages(values: Sequence[str], available: Sequence[str], catalogue: str, most: int | None = None) -> list[str]:
    """``values`` checked against the languages a role's catalogue has (``available``), for a
    pydantic validator: each one known, none twice, at most ``most``. The message names what
    there is and where a new language comes from, e.g. ``unknown language 'de' (display/locale
    has pl, en, uk; a new language is a PO file there, docs/translating.md)``."""
    out = list(values)
    for lang in out:
        if lang not in available:
            raise ValueError(
                f"unknown language {lang!r} ({catalogue} has {', '.join(available)}; "
                "a new language is a PO file there, docs/translating.md)"
            )
    if len(set(out)) != len(out):
        raise ValueError("a language must not repeat")
    if most is not None and len(out) > most:
        raise ValueError(f"at most {most} languages")
    return out


def relative_to(config: Path, value: str) -> str:
    """A path written in a config file, relative to that file's folder ("" stays "")."""
    if not value:
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else config.resolve().parent / p)


__all__ = ["ConfigError", "languages", "load", "parse_toml", "problem", "read_toml", "relative_to", "validate"]
