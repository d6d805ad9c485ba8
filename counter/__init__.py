"""Numerek counter role."""
