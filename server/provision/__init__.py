"""``numerek-provision``: broker accounts, ACL and device config files (see :mod:`server.provision.cli`)."""

from server.provision.accounts import Account, Broker, ProvisionError, Registry, check_password, hash_password
from server.provision.acl import acl_rules, render_acl, retained_topics
from server.provision.cli import DEFAULT_BROKER_DIR, DEFAULT_CONFIG_DIR, build_parser, main
from server.provision.device_config import render_device_config, set_keys

__all__ = [
    "DEFAULT_BROKER_DIR",
    "DEFAULT_CONFIG_DIR",
    "Account",
    "Broker",
    "ProvisionError",
    "Registry",
    "acl_rules",
    "build_parser",
    "check_password",
    "hash_password",
    "main",
    "render_acl",
    "render_device_config",
    "retained_topics",
    "set_keys",
]
