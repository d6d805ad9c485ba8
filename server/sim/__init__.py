"""Scenario simulation: an office described in a TOML file, run through the real engine.

``scenario`` reads and checks the file, ``office`` drives the engine through a day of
clerks and residents on a simulated clock, ``measure`` judges wait estimates against what
happened (docs/estimates.md).
"""
