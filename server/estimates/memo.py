"""What an estimate needs of the site config, worked out once per config instead of once per ticket.

Why: every estimate asks which counters and services are connected to the ticket's service
(:func:`~server.estimates.honest.group_of`) and, for each counter and service of that group,
on which weekdays its services keep the same hours (``_alike``). Both depend only on the
config, yet they were worked out again for every ticket: with a burst of tickets in one
group-commit batch that was about a fifth of the estimate's cost (docs/performance.md). The
answers are kept here, keyed on the config objects themselves (the engine replaces them
when the config changes, and the memo starts again), so what is printed is exactly what the
uncached rule gives (tests/test_estimate_memo.py plays scenario days both ways).

``enabled=False`` computes everything every time: the reference the tests compare against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from server.config import Counter, Service


class ConfigMemo:
    """Answers that depend only on the services' and counters' config. ``computed`` counts the real computations."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.computed = 0
        self._services: tuple[Service, ...] = ()
        self._counters: tuple[Counter, ...] = ()
        self._answers: dict[tuple, Any] = {}

    def _same_config(self, services: Mapping[str, Service], counters: Mapping[str, Counter]) -> None:
        """Forget everything when the config is not the one the answers came from (compared by identity)."""
        s, c = self._services, self._counters
        if (
            len(s) == len(services)
            and len(c) == len(counters)
            and all(a is b for a, b in zip(s, services.values(), strict=True))
            and all(a is b for a, b in zip(c, counters.values(), strict=True))
        ):
            return
        self._services, self._counters = tuple(services.values()), tuple(counters.values())
        self._answers = {}

    def get(
        self,
        services: Mapping[str, Service],
        counters: Mapping[str, Counter],
        key: tuple,
        compute: Callable[[], Any],
    ) -> Any:
        """The answer for ``key`` under this config; ``compute`` runs only the first time.

        The answer itself is handed out, not a copy (a copy of a set may iterate in another
        order, and the replay's order must not change): callers only read it."""
        if not self.enabled:
            self.computed += 1
            return compute()
        self._same_config(services, counters)
        try:
            return self._answers[key]
        except KeyError:
            self.computed += 1
            answer = self._answers[key] = compute()
            return answer
