"""The centre's config file (``central.toml``), read with the one loader (protocol/config.py).

[mqtt]                        # the central broker, as every role's [mqtt]
host = "127.0.0.1"
port = 1883

[database]
dsn = "postgresql:///numerek_central?host=/run/postgresql"

[http]
host = "127.0.0.1"
port = 8090

[[branches]]                  # names for the views; a branch not listed still replicates
id = "wola"
name = "Urząd Dzielnicy Wola"
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from protocol.config import read_toml, validate
from protocol.mqtt import BrokerConfig
from protocol.topics import ID_PATTERN


class Database(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dsn: Annotated[str, Field(min_length=1)]


class Http(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8090
    users_database: str = "central-users.db"
    """The centre's logins (SQLite, ``numerek-users --database``); relative to the config file."""


class Branch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    name: str
    public_url: Annotated[str, Field(pattern=r"^https?://[^\s\"'<>]+$")] | None = None
    """The branch's own public address (its ``/kolejka`` and ``/rezerwacja``): the centre's
    public list links there."""


class CentralConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    mqtt: BrokerConfig = BrokerConfig()
    database: Database
    http: Http = Http()
    branches: list[Branch] = []

    def branch_names(self) -> dict[str, str]:
        return {b.id: b.name for b in self.branches}

    def public_urls(self) -> dict[str, str]:
        return {b.id: b.public_url.rstrip("/") for b in self.branches if b.public_url}


def load_config(path: str | Path) -> CentralConfig:
    return validate(CentralConfig, read_toml(path), path)
