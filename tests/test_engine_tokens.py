"""Tickets' status tokens: unguessable and unique as before, without a system call per ticket."""

from __future__ import annotations

import os
import re

from server.engine import QueueEngine, TokenPool
from tests.engine_support import FakeClock, office_config


def busy_engine(tokens: TokenPool) -> QueueEngine:
    cfg = office_config()
    cfg = cfg.model_copy(update={"services": [s.model_copy(update={"daily_limit": 9999}) for s in cfg.services]})
    return QueueEngine(cfg, FakeClock(), token_factory=tokens)


def test_a_thousand_tickets_ask_the_kernel_for_randomness_four_times_not_a_thousand():
    tokens = TokenPool()
    engine = busy_engine(tokens)
    issued = [engine.issue("rej" if i % 2 else "kasa")[0].token for i in range(1000)]
    assert tokens.draws == 4  # 256 tokens per draw
    assert len(set(issued)) == 1000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{16}", t) for t in issued)  # as secrets.token_urlsafe(12)


def test_a_forked_child_never_repeats_its_parents_tokens():
    tokens = TokenPool()
    tokens()  # the parent's pool holds 255 more
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next token, to the parent
        os.write(write, tokens().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert child != tokens()
