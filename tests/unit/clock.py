"""A clock for tests: monotonic time that only sleeps move, and a wall clock that can jump."""

from __future__ import annotations

from typing import Any, Callable


class FakeClock:
    def __init__(self, monotonic: float = 1000.0, wall: float = 1_800_000_000.0) -> None:
        self.now = monotonic
        self.wall_now = wall
        self.slept: list[float] = []
        self._at: list[tuple[float, Callable[[], None]]] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_now

    def advance(self, seconds: float) -> None:
        """Time passes (a sleep, or a request taking this long)."""
        self.now += seconds
        self.wall_now += seconds
        due = [item for item in self._at if item[0] <= self.now]
        self._at = [item for item in self._at if item[0] > self.now]
        for _, action in due:
            action()

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept.append(seconds)
        self.advance(seconds)

    def at(self, when: float, action: Callable[[], None]) -> None:
        """Run ``action`` once monotonic time reaches ``when``."""
        self._at.append((when, action))

    def jump_wall(self, seconds: float) -> None:
        """NTP steps the wall clock; monotonic time does not move."""
        self.wall_now += seconds


class Log:
    """Records what would be logged: (level, event, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        def log(event: str, **fields: Any) -> None:
            self.lines.append((level, event, fields))

        return log

    def events(self, level: str) -> list[str]:
        return [event for lvl, event, _ in self.lines if lvl == level]
