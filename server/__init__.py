"""Numerek server role."""
