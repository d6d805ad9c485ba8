"""Numerek hardware role."""
