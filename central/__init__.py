"""The centre of a multi-branch installation (docs/multi-branch.md): an ingester that writes
every branch's replicated event log into PostgreSQL, and the central views and reports.

It imports the message contract (protocol/) and nothing of a branch server's write path;
branch servers never import it (import-linter contract in pyproject.toml).
"""
