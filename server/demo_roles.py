"""The device roles the demo starts, and their demo configs.

Kept apart from server/demo.py so each role's demo command sits in one short list.
"""

from __future__ import annotations

from pathlib import Path


def role_commands(data: Path, mqtt_port: int, url: str, bin_dir: Path) -> list[tuple[str, list[str], bool]]:
    """(name, command, needs a screen) for each device role in demo mode."""
    return []
