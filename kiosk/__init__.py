"""Numerek kiosk role."""
