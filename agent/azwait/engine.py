"""The one way azwait waits.

Every wait (for Succeeded, for the per-VM lock, for IMDS at the start of
``azwait events``, between Scheduled Events reads, for an approval, status's one
look) is a run of attempts here:

- an attempt gets the time it may take and returns ``Done(value)`` or ``NotYet(delay)``,
  or raises ``Transient``, which the wait policy turns into a delay or, once its
  grace is spent, into the error that ends the run (an answer ends every streak);
- time is the monotonic clock's only (the wall clock steps when NTP syncs at boot);
- no attempt starts at or after the deadline, none is given longer than what is
  left of it or of a running grace, and no pause runs past it.

tenacity, the usual choice, drives retries with exceptions and owns the sleep; here
a "not yet" is a normal answer and every delay is the policy's decision, so a
plain loop says it more directly (see the README's design notes).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import TYPE_CHECKING, Callable, Generic, Optional, TypeVar, Union

from .transient import Transient

if TYPE_CHECKING:
    from .policy import WaitPolicy

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Done(Generic[T]):
    value: T


@dataclasses.dataclass(frozen=True)
class NotYet:
    delay: float


Step = Union[Done[T], NotYet]


def _no_report(failure: Transient) -> None:
    pass


def _no_pause(asked: float, pause: float) -> None:
    pass


class Engine:
    """Runs attempts until one is done, within ``deadline`` (monotonic seconds)."""

    def __init__(self, deadline: float = math.inf, policy: Optional[WaitPolicy] = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 on_failure: Callable[[Transient], None] = _no_report,
                 before_pause: Callable[[float, float], None] = _no_pause) -> None:
        self.deadline = deadline
        self.policy = policy
        self.clock = clock
        self.sleep = sleep
        self.on_failure = on_failure  # hears each failure the policy retries
        # Hears each pause before it starts: (what was asked for, what the deadline allows).
        self.before_pause = before_pause

    def bare(self) -> Engine:
        """The same deadline and clock, without the policy or the hooks (e.g. for a lock)."""
        return Engine(self.deadline, None, self.clock, self.sleep)

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def run(self, attempt: Callable[[float], Step[T]],
            expired: Callable[[], BaseException]) -> T:
        """The value of the first ``Done``; ``expired()`` raised once the deadline is reached.

        A ``Transient`` without a policy propagates, as does whatever the policy raises.
        """
        while True:
            began = self.clock()
            if began >= self.deadline:
                raise expired()
            limit = self.deadline - began
            if self.policy is not None:
                limit = min(limit, self.policy.attempt_limit(began))
            try:
                step = attempt(limit)
            except Transient as failure:
                if self.policy is None:
                    raise
                delay = self.policy.on_failure(failure, self.clock(), began)
                self.on_failure(failure)
            else:
                if self.policy is not None:
                    self.policy.on_success()  # an answer: failure streaks start over
                if isinstance(step, Done):
                    return step.value
                delay = step.delay
            self.pause(delay)

    def pause(self, delay: float) -> None:
        """Sleep ``delay`` seconds, never past the deadline."""
        pause = max(0.0, min(delay, self.remaining()))
        self.before_pause(delay, pause)
        if pause > 0:
            self.sleep(pause)
