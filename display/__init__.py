"""Numerek display role."""
