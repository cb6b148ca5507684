"""The wait policy: given what Azure just said, what now? Pure, clock passed in.

Every delay azwait sleeps comes from here: the start offset, the jittered poll
interval (stretched when the shared read budget runs low), backoff after
failures (never under ``Retry-After``), and the grace windows after which a
persistent failure becomes a fatal error with its exit code.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from typing import Optional

from .errors import AzwaitError, IdentityError, NotAzure, TerminalState
from .transient import Transient

SUCCEEDED = "succeeded"
TERMINAL = ("canceled", "deleting")
# Intervals are drawn from [1-J, 1+J] x base: enough to keep a fleet out of step (the
# start offset and the spread after a stretch do the de-phasing), narrow enough that a
# stretched one-minute interval, which the p95 detection delay is made of, stays near one.
JITTER = 0.15
START_OFFSET_MAX = 0.5  # seconds; spreads a fleet's first reads without delaying a ready VM
NOT_FOUND_GRACE = 120.0  # ARM replication lag for a VM it has never shown us
BACKOFF_CAP = 60.0
# The budget alone stretches 5 s to a minute at most: at that, 1,000 scale-set VMs
# use half of Compute's 2,000 reads a minute. Only 429s push beyond, to 2 minutes.
MAX_STRETCH = 12.0
MAX_THROTTLED_STRETCH = 24.0
TARGET_SHARE = 0.4  # of the sustainable read rate, for the whole fleet
RELAX = 0.5  # the most one look can shorten the interval by
LONG_POLICY_SUFFIX = "30Min"  # Compute's sustained-rate policy: a 30-minute bucket
WINDOW_SECONDS = 1800.0
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


def parse_budget(headers: Mapping[str, str]) -> dict[str, int]:
    """Remaining-read counters from ARM/Compute throttling headers, by policy name.

    ``x-ms-ratelimit-remaining-subscription-reads: 11999`` and
    ``x-ms-ratelimit-remaining-resource: Microsoft.Compute/GetVMScaleSetVM3Min;179,...``.
    """
    counters: dict[str, int] = {}
    reads = headers.get("x-ms-ratelimit-remaining-subscription-reads", "").strip()
    if reads.isdigit():
        counters["subscription-reads"] = int(reads)
    for item in headers.get("x-ms-ratelimit-remaining-resource", "").split(","):
        name, _, count = item.strip().rpartition(";")
        if name and count.strip().isdigit():
            counters[name] = int(count)
    return counters


def backoff(failures: int, base: float, rng: random.Random) -> float:
    """After the n-th failure in a row: doubling from base, capped, half-jittered."""
    return min(BACKOFF_CAP, base * 2.0 ** min(failures - 1, 10)) * rng.uniform(0.5, 1.0)


class Pacer:
    """Stretches the poll interval to keep the fleet's reads under half the budget.

    Each agent sees only its own responses. Compute's 30-minute policy counter
    tells it, without any coordination, what the whole subscription is doing: its
    capacity (the highest value seen) over 1,800 s is the sustainable rate B, and
    the drop between two of this agent's reads is what everybody took beyond B.
    The agent scales its interval by (B + drop rate) / (B x TARGET_SHARE), so
    that the fleet settles at TARGET_SHARE of B, leaving the rest for the
    user's own tools. Without that counter, a low remaining fraction of any
    counter stretches the interval, and a full one lets it relax.

    ``previous`` is the stretch before the last look: a fleet that slowed down
    together would keep reading together, so the first wait after a stretch is
    spread over the whole new interval (see WaitPolicy.poll_delay).
    """

    def __init__(self) -> None:
        self.stretch = 1.0
        self.previous = 1.0
        self._capacity: dict[str, int] = {}
        self._last: tuple[int, float] | None = None  # 30-minute counter, when seen

    def observe(self, headers: Mapping[str, str], now: float) -> None:
        self.previous = self.stretch
        counters = parse_budget(headers)
        fractions = []
        for name, remaining in counters.items():
            capacity = max(self._capacity.get(name, 0), remaining)
            self._capacity[name] = capacity
            fractions.append(remaining / capacity if capacity else 0.0)
        if not fractions:
            return
        low = min(fractions)
        window = next((name for name in counters if name.endswith(LONG_POLICY_SUFFIX)), None)
        factor = self._rate_factor(counters[window], self._capacity[window], now) \
            if window else None
        if low < 0.25:  # a bucket nearly empty: brake whatever the rates say
            factor = max(factor or 1.0, 2.0)
        elif factor is None:
            factor = 1.5 if low < 0.5 else (1 / 1.5 if low > 0.75 else 1.0)
        self.stretch = min(MAX_STRETCH, max(1.0, self.stretch * factor))

    def _rate_factor(self, remaining: int, capacity: int, now: float) -> float | None:
        last, self._last = self._last, (remaining, now)
        if last is None or now - last[1] < 1.0:
            return None
        sustainable = capacity / WINDOW_SECONDS
        nearly_full = capacity - sustainable  # a second's refill short: others' reads, rounding
        if remaining >= nearly_full and last[0] >= nearly_full:
            # Full at both looks: how much is used is hidden, but it is less than the
            # refill. A counter that rose to a new high from below is still a measurement.
            return RELAX
        used = sustainable + (last[0] - remaining) / (now - last[1])
        # In one step to where the fleet would be on target if all did the same;
        # back down by at most half, as the others are coming down too.
        return max(RELAX, max(0.0, used) / (sustainable * TARGET_SHARE))

    def throttled(self) -> None:
        self.previous = self.stretch
        self.stretch = min(MAX_THROTTLED_STRETCH, self.stretch * 2.0)


class WaitPolicy:
    """Decides, after each look at Azure, whether to stop, fail, or wait how long."""

    def __init__(self, interval: float, graces: Graces, on_failed: str = "exit",
                 rng: Optional[random.Random] = None) -> None:
        self.interval = interval
        self.graces = graces
        self.on_failed = on_failed
        self.pacer = Pacer()
        self.seen = False  # ARM has shown us the VM at least once
        self._rng = rng or random.Random()
        self._since: dict[str, float] = {}  # failure kind -> start of its current streak
        self._failures = 0

    def start_offset(self) -> float:
        return self._rng.uniform(0.0, min(START_OFFSET_MAX, self.interval / 2))

    def poll_delay(self) -> float:
        pacer = self.pacer
        if pacer.stretch > pacer.previous:
            # De-phases agents that all slowed down on the same news.
            return self.interval * self._rng.uniform(pacer.previous, pacer.stretch)
        base = self.interval * pacer.stretch
        return base * self._rng.uniform(1.0 - JITTER, 1.0 + JITTER)

    def on_state(self, state: str, headers: Mapping[str, str], now: float) -> Optional[float]:
        """None when the VM is Succeeded, else the delay before the next look."""
        self.seen = True
        self._since.clear()
        self._failures = 0
        self.pacer.observe(headers, now)
        lowered = state.lower()
        if lowered == SUCCEEDED:
            return None
        if lowered in TERMINAL or (lowered == "failed" and self.on_failed == "exit"):
            raise TerminalState(f"VM provisioningState is {state}: the worker will not start")
        return self.poll_delay()

    def on_failure(self, failure: Transient, now: float) -> float:
        """The delay before the next try, or the fatal error once its grace is spent."""
        self._failures += 1
        since = self._since.setdefault(failure.kind, now)
        if failure.kind == "not_found" and self.seen:
            raise TerminalState(f"{failure.reason} any more: the VM was deleted")
        grace_left = since + self._grace(failure.kind) - now
        if grace_left <= 0:
            raise self._fatal(failure)
        if failure.retry_after is not None:
            self.pacer.throttled()
            # Never sooner than asked. A refused fleet all hears the same short
            # Retry-After: spread its return over the (now doubled) interval, or
            # it comes back together and is refused again.
            spread = self.interval * self._rng.uniform(0.0, self.pacer.stretch)
            return failure.retry_after + 0.05 + spread
        base = 1.0 if failure.kind == "imds" else self.interval
        # One last try right at the end of the grace window, not a backoff past it.
        return min(backoff(self._failures, base, self._rng), grace_left)

    def _grace(self, kind: str) -> float:
        return {
            "imds": self.graces.imds,
            "identity": self.graces.identity,
            "rbac": self.graces.rbac,
            "not_found": self.graces.not_found,
        }.get(kind, float("inf"))

    def _fatal(self, failure: Transient) -> AzwaitError:
        if failure.kind == "imds":
            return NotAzure(f"not an Azure VM? {failure.reason} for the whole AZWAIT_IMDS_GRACE")
        if failure.kind == "identity":
            return IdentityError(f"{failure.reason} after AZWAIT_IDENTITY_GRACE: {IDENTITY_HINT}")
        if failure.kind == "rbac":
            return IdentityError(f"{failure.reason} (still refused after AZWAIT_RBAC_GRACE)")
        return TerminalState(f"{failure.reason} (never seen, even after "
                             f"{self.graces.not_found:g}s of replication lag)")
