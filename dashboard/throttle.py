"""Login throttling: at most N failures per (username, address) in a sliding window."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

Key = tuple[str, str]


class LoginThrottle:
    """In-memory and per process; a success clears the key's failures."""

    def __init__(
        self,
        max_failures: int = 5,
        window_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[Key, deque[float]] = {}

    @staticmethod
    def key(username: str, address: str) -> Key:
        return (username.strip().lower(), address)

    def _recent(self, key: Key) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        horizon = self._clock() - self.window_s
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def blocked(self, key: Key) -> bool:
        return len(self._recent(key)) >= self.max_failures

    def retry_after(self, key: Key) -> int:
        """Seconds until one more attempt is allowed (0 if allowed now)."""
        times = self._recent(key)
        if len(times) < self.max_failures:
            return 0
        return max(1, int(times[-self.max_failures] + self.window_s - self._clock()) + 1)

    def failure(self, key: Key) -> None:
        if key not in self._failures and len(self._failures) >= self._max_keys:
            self._prune()
        self._failures.setdefault(key, deque()).append(self._clock())

    def success(self, key: Key) -> None:
        self._failures.pop(key, None)

    def _prune(self) -> None:
        for key in list(self._failures):
            self._recent(key)
        while len(self._failures) >= self._max_keys:  # still full: forget the stalest key
            stalest = min(self._failures, key=lambda k: self._failures[k][-1])
            del self._failures[stalest]
