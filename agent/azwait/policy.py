"""The wait policy: given what Azure just said, what now? Pure, clock passed in.

Every delay of a wait on Azure comes from here: the start offset, the jittered
poll interval (stretched by the fleet pacer, pacer.py, and in a fleet held to its
duty cycle), backoff after failures (never under ``Retry-After``), and the grace
windows after which a persistent failure becomes a fatal error with its exit code.
The two fixed polls that are not Azure's to pace, for the per-VM lock
(``state.LOCK_POLL``) and Scheduled Events' once a second (``events.POLL``), are
set where they are used; the engine sleeps them all.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Mapping
from typing import Optional

from .config import format_duration
from .errors import AzwaitError, IdentityError, NetworkPathError, NotAzure, TerminalState
from .pacer import CYCLE, OPEN, Pacer
from .transient import Kind, Transient

SUCCEEDED = "succeeded"
TERMINAL = ("canceled", "deleting")
# Intervals are drawn from [1-J, 1+J] x base: enough to keep a fleet out of step (the
# start offset and the spread after a stretch do the de-phasing), narrow enough that a
# stretched one-minute interval, which the p95 detection delay is made of, stays near one.
JITTER = 0.15
START_OFFSET_MAX = 0.5  # seconds; spreads a fleet's first reads without delaying a ready VM
NOT_FOUND_GRACE = 120.0  # ARM replication lag for a VM it has never shown us
BACKOFF_CAP = 60.0
SHORTEST_TRY = 1.0  # the last attempt of a grace window still gets this long
IDENTITY_HINT = (
    "assign a managed identity to the VM or scale set and give it the Reader role on it, "
    "e.g. az vmss identity assign -g RG -n SCALESET --role Reader --scope <scale set id>"
)


@dataclasses.dataclass(frozen=True)
class Graces:
    imds: float
    identity: float
    rbac: float
    not_found: float = NOT_FOUND_GRACE
    network: float = float("inf")

    @classmethod
    def none(cls) -> Graces:
        """One look: the first failure of each kind is final."""
        return cls(imds=0, identity=0, rbac=0, not_found=0, network=0)

    @property
    def one_look(self) -> bool:
        return self == Graces.none()


def backoff(failures: int, base: float, rng: random.Random) -> float:
    """After the n-th failure in a row: doubling from base, capped, half-jittered."""
    return min(BACKOFF_CAP, base * 2.0 ** min(failures - 1, 10)) * rng.uniform(0.5, 1.0)


class WaitPolicy:
    """Decides, after each look at Azure, whether to stop, fail, or wait how long."""

    def __init__(self, interval: float, graces: Graces, on_failed: str = "exit",
                 rng: Optional[random.Random] = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.interval = interval
        self.graces = graces
        self.on_failed = on_failed
        self.pacer = Pacer(interval, wall=wall)  # the wall clock only places reads in its cycle
        self.seen = False  # ARM has shown us the VM at least once
        self._rng = rng or random.Random()
        self._since: dict[Kind, float] = {}  # failure kind -> start of its current streak
        self._failures = 0

    def start_offset(self) -> float:
        return self._rng.uniform(0.0, min(START_OFFSET_MAX, self.interval / 2))

    def poll_delay(self) -> float:
        pacer = self.pacer
        if pacer.stretch > pacer.previous:
            # De-phases agents that all slowed down on the same news.
            delay = self.interval * self._rng.uniform(pacer.previous, pacer.stretch)
        else:
            delay = self.interval * pacer.stretch * self._rng.uniform(1.0 - JITTER, 1.0 + JITTER)
        return self.in_window(delay)

    def in_window(self, delay: float) -> float:
        """In a fleet, a read that would fall in the closed part of the shared duty cycle
        moves to a random point of the next open part (see pacer)."""
        if not self.pacer.fleet:
            return delay
        phase = (self.pacer.wall() + delay) % CYCLE
        if phase < OPEN:
            return delay
        return delay + (CYCLE - phase) + self._rng.uniform(0.0, OPEN)

    def on_success(self) -> None:
        """An answer came: failure streaks and their backoff start over."""
        self._since.clear()
        self._failures = 0

    def on_state(self, state: str, headers: Mapping[str, str]) -> Optional[float]:
        """None when the VM is Succeeded, else the delay before the next look."""
        self.seen = True
        self.on_success()
        self.pacer.observe(headers)
        lowered = state.lower()
        if lowered == SUCCEEDED:
            return None
        if lowered in TERMINAL or (lowered == "failed" and self.on_failed == "exit"):
            raise TerminalState(f"VM provisioningState is {state}: the worker will not start")
        return self.poll_delay()

    def attempt_limit(self, now: float) -> float:
        """How long the next attempt may take: no longer than what is left of a running
        grace (at least ``SHORTEST_TRY``), so that a hang cannot stretch one."""
        left = [since + self._grace(kind) - now for kind, since in self._since.items()]
        return max(SHORTEST_TRY, min(left)) if left else float("inf")

    def on_failure(self, failure: Transient, now: float, began: Optional[float] = None) -> float:
        """The delay before the next try, or the fatal error once its grace is spent.

        A grace runs from the start of the first failed attempt (``began``), so a
        request that hangs until its own timeout is counted in full.
        """
        self._failures += 1
        since = self._since.setdefault(failure.kind, now if began is None else began)
        if failure.kind is Kind.NOT_FOUND and self.seen:
            raise TerminalState(f"{failure.reason} any more: the VM was deleted")
        grace_left = since + self._grace(failure.kind) - now
        if grace_left <= 0:
            raise self.fatal(failure)
        if failure.headers:
            self.pacer.observe(failure.headers, refused=failure.retry_after is not None)
        elif failure.retry_after is not None:
            self.pacer.throttled()
        if failure.retry_after is not None:
            # Never sooner than asked. A refused fleet all hears the same short
            # Retry-After: spread its return over the (now stretched) interval, or
            # it comes back together and is refused again.
            spread = self.interval * self._rng.uniform(0.0, self.pacer.stretch)
            return self.in_window(failure.retry_after + 0.05 + spread)
        base = 1.0 if failure.kind is Kind.IMDS else self.interval
        # One last try right at the end of the grace window, not a backoff past it.
        return min(backoff(self._failures, base, self._rng), grace_left)

    def _grace(self, kind: Kind) -> float:
        return {
            Kind.IMDS: self.graces.imds,
            Kind.IDENTITY: self.graces.identity,
            Kind.RBAC: self.graces.rbac,
            Kind.NOT_FOUND: self.graces.not_found,
            Kind.NETWORK: self.graces.network,
        }.get(kind, float("inf"))

    def fatal(self, failure: Transient) -> AzwaitError:
        """The error a failure becomes: after its grace, or at once for one look."""
        reason, kind = failure.reason, failure.kind

        def after(key: str) -> str:
            if self.graces.one_look:
                return ""
            return f" (for AZWAIT_{key.upper()}_GRACE={format_duration(self._grace(kind))})"

        if kind is Kind.IMDS:
            return NotAzure(f"not an Azure VM? {reason}{after('imds')}")
        if kind is Kind.IDENTITY:
            return IdentityError(f"{reason}{after('identity')}: {IDENTITY_HINT}")
        if kind is Kind.RBAC:
            return IdentityError(f"{reason}{after('rbac')}")
        if kind is Kind.NETWORK:
            return NetworkPathError(f"{reason}{after('network')}")
        if self.graces.one_look:
            return TerminalState(f"{reason} (a VM created in the last "
                                 f"{format_duration(NOT_FOUND_GRACE)} may not be visible yet)")
        return TerminalState(f"{reason}, even after {format_duration(self.graces.not_found)} "
                             "of replication lag")
