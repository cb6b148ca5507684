"""Fleet pacing: how long to wait between reads, from Azure's own budget counters.

Every ARM answer, a 429 included, carries the remaining count of each read budget
the request passed through. Each is a token bucket; its refill R is its capacity
over the time it takes to refill (azure-facts.md, with sources):

- ``x-ms-ratelimit-remaining-subscription-reads``: ARM, per principal per
  subscription and region, 250 refilled at 25/s: 10 s. A scale set's instances
  share one identity, so at real ratios this is usually the tightest budget.
- ``x-ms-ratelimit-remaining-subscription-global-reads``: ARM, per subscription,
  3,750 at 375/s: 10 s, 15 times the principal's (the same documentation).
- ``x-ms-ratelimit-remaining-resource: Microsoft.Compute/<policy>;<n>,...``:
  Compute's policies, the window read from the name (``GetVMScaleSetVM3Min``:
  180 s, ``...30Min``: 1,800 s). A name without one is left out.

A capacity is the highest count seen plus our own read. Until it has been seen
full, the per-principal bucket is taken as a fifteenth of the subscription's, and
a shorter Compute window as at least the longer one's capacity x the window
ratio (it must allow at least the longer one's rate), so that a VM booting into
a drained bucket knows it from its first answer.

Below its refill a token bucket stays full, and a full bucket hides how much of
it the fleet uses: counters alone cannot hold a fleet under half of a refill.
A duty cycle shared through the wall clock makes them tell:

- A VM alone sees full buckets and reads every interval (jittered), as ever.
- The first bucket seen more than FULL_SLACK s of refill below full, or the
  first 429, means a fleet shares the budget. The agent joins it: its interval
  becomes at least JOIN intervals (the first wait drawn from 1 to JOIN, so
  newcomers spread), and from then on every read falls in the first OPEN s of
  each CYCLE s of the wall clock. The whole fleet's demand D is then packed
  into the open part at D/q (q = OPEN/CYCLE): every bucket, fast or slow,
  drains there as soon as D > q R, and refills in the closed part.
- One reading phi s into the open part, d reads below full, gives the fleet's
  demand over that bucket's refill: u = q (1 + d / (R phi)), exact while the
  bucket was full when the open part began (it is whenever D < R). A full
  bucket there says u <= q. The tightest bucket (largest u) rules.
- Each look multiplies the stretch by u / TARGET, within [1/STEP, STEP]: the
  fleet settles at TARGET of the tightest refill, and no look jumps far, since
  an agent corrects only at its next look. While the fleet grows, the same
  steps let every agent's interval grow with it.
- A 429 hides how far over the fleet is: one STEP up. Without counters at all
  (a proxy that strips them), a 429 doubles the plain interval, as ever.

The wall clock only places reads within the cycle: a step of the clock moves a
read by less than one cycle and never touches a deadline or a grace, which the
waiter keeps on the monotonic clock. VMs in a scale set agree on the time to
well under a second (the host's time sync); the fleet model holds its targets
with clocks a second apart.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Mapping
from typing import Optional

PRINCIPAL = "subscription-reads"
GLOBAL = "subscription-global-reads"
HEADERS = {
    "x-ms-ratelimit-remaining-subscription-reads": PRINCIPAL,
    "x-ms-ratelimit-remaining-subscription-global-reads": GLOBAL,
}
RESOURCE_HEADER = "x-ms-ratelimit-remaining-resource"
ARM_WINDOW = 10.0  # seconds: 250 at 25/s per principal, 3,750 at 375/s per subscription
GLOBAL_PER_PRINCIPAL = 15.0
_MINUTES = re.compile(r"(\d+)Min$", re.IGNORECASE)

MAX_INTERVAL = 600.0  # seconds: 5,000 VMs on one identity at 40 % of 25/s read every 500 s
CYCLE = 20.0  # seconds: the shared duty cycle; its closed part refills ARM's 10 s buckets
OPEN = 4.0  # seconds: the open part, where a fleet's reads go (q = 0.2)
TARGET = 0.4  # the fleet's demand, as a share of the tightest refill: under half
STEP = 3.0  # the most one look may change the stretch by, either way
JOIN = 20.0  # the least stretch on joining a fleet: 100 s, about what 1,000 VMs need
MIN_PHASE = 0.5  # seconds into the open part before a reading says a rate
FULL_SLACK = 0.5  # seconds of refill below full that still count as full


def parse_budget(headers: Mapping[str, str]) -> dict[str, int]:
    """Remaining-read counters by name, from ARM's and Compute's throttling headers."""
    counters: dict[str, int] = {}
    lowered = {name.lower(): value for name, value in headers.items()}
    for header, name in HEADERS.items():
        value = lowered.get(header, "").strip()
        if value.isdigit():
            counters[name] = int(value)
    for item in lowered.get(RESOURCE_HEADER, "").split(","):
        name, _, count = item.strip().rpartition(";")
        if name and count.strip().isdigit():
            counters[name] = int(count)
    return counters


def window_of(name: str) -> Optional[float]:
    """Seconds a bucket takes to refill from empty, when its name tells."""
    if name in (PRINCIPAL, GLOBAL):
        return ARM_WINDOW
    minutes = _MINUTES.search(name)
    return float(minutes.group(1)) * 60.0 if minutes and int(minutes.group(1)) else None


@dataclasses.dataclass
class _Bucket:
    window: Optional[float]
    capacity: float = 0.0


class Pacer:
    """The stretch of the poll interval, from the budget counters of every answer.

    ``previous`` is the stretch before the last look: a fleet that slowed down
    together would keep reading together, so the first wait after a stretch is
    spread over the whole new interval (see WaitPolicy.poll_delay).
    """

    def __init__(self, interval: float, wall: Callable[[], float] = time.time) -> None:
        self.max_stretch = max(1.0, MAX_INTERVAL / interval) if interval > 0 else 1.0
        self.stretch = 1.0
        self.previous = 1.0
        self.wall = wall
        self._buckets: dict[str, _Bucket] = {}
        self.fleet = False  # a bucket has been seen drained: other VMs share it

    def observe(self, headers: Mapping[str, str], refused: bool = False) -> None:
        """One answer's counters; ``refused``: the answer was a 429."""
        self.previous = self.stretch
        counters = parse_budget(headers)
        for name, remaining in counters.items():
            bucket = self._buckets.setdefault(name, _Bucket(window_of(name)))
            bucket.capacity = max(bucket.capacity, remaining + 1.0)
        phase = self.wall() % CYCLE
        usage: Optional[float] = None  # the tightest bucket's demand over its refill
        drained = refused
        for name, remaining in counters.items():
            bucket = self._buckets[name]
            if not bucket.window:
                continue
            capacity = max(bucket.capacity, self._least_capacity(name, bucket))
            refill = capacity / bucket.window
            deficit = max(0.0, capacity - 1.0 - remaining)
            if deficit > refill * FULL_SLACK:
                drained = True
            u = self._usage(deficit, refill, phase)
            if u is not None:
                usage = u if usage is None else max(usage, u)
        if drained and not self.fleet:
            self.fleet = True
            factor = max(1.0, JOIN / self.stretch)  # joining is this look's step
        elif refused:
            factor = STEP
        elif usage is None or not self.fleet:
            factor = 1.0
        else:
            factor = min(STEP, max(1.0 / STEP, usage / TARGET))
        self.stretch = min(self.max_stretch, max(1.0, self.stretch * factor))

    @staticmethod
    def _usage(deficit: float, refill: float, phase: float) -> Optional[float]:
        """The fleet's demand over the bucket's refill, from a reading ``phase`` s into
        the cycle; None when the reading does not tell."""
        q = OPEN / CYCLE
        if MIN_PHASE <= phase <= OPEN:
            return q * (1.0 + deficit / (refill * phase))
        return None

    def _least_capacity(self, name: str, bucket: _Bucket) -> float:
        """What the other buckets say this one holds at least, before it is seen full.

        ARM's per-principal bucket is a fifteenth of the subscription's (documented). Of
        Compute's policies over the same GETs, a shorter window allows at least the
        longer one's sustained rate, so holds at least its capacity x the window ratio.
        """
        if name == PRINCIPAL:
            glob = self._buckets.get(GLOBAL)
            return glob.capacity / GLOBAL_PER_PRINCIPAL if glob else 0.0
        if name == GLOBAL or bucket.window is None:
            return 0.0
        return max((other.capacity * bucket.window / other.window
                    for key, other in self._buckets.items()
                    if key not in (PRINCIPAL, GLOBAL) and other.window
                    and other.window > bucket.window), default=0.0)

    def throttled(self) -> None:
        """A 429 with no counters to read (a proxy stripped them): no duty cycle can be
        read either, so the plain interval doubles, as before any counter was read."""
        self.previous = self.stretch
        self.stretch = min(self.max_stretch, self.stretch * 2.0)
