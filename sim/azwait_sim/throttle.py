"""ARM and Compute read limits on VM GETs, as token buckets, at real ratios.

Numbers are the documented ones (azure-facts.md): ARM 250 reads refilled at 25/s
per principal, and 15x that (3,750 at 375/s) per subscription across principals
(learn.microsoft.com azure-resource-manager request-limits-and-throttling);
Compute GET scale-set VM 2,000/min with a burst of 6,000 per subscription, and
12/min with a burst of 36 per VM (learn.microsoft.com virtual-machines
compute-throttling-limits). Compute reports two policies, a 3-minute one (the
burst) and a 30-minute one, both refilled at the per-minute rate.

``scale`` stands a fleet of N simulated VMs in for one of N/scale: every bucket the
fleet shares (per principal, per subscription, Compute's) shrinks by it, so all keep
their real ratios to each other and to the per-VM limit, which stays real because
each simulated VM is one VM. The counters report what the scaled buckets hold.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from azwait_sim import spec

# Keeps ceil() from turning 5.000000001 s of float drift into a 6 s Retry-After.
_EPSILON = 1e-9


class TokenBucket:
    """Holds up to ``capacity`` tokens and gains ``refill_per_s`` a second."""

    def __init__(self, capacity: float, refill_per_s: float, now: float) -> None:
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self._tokens = capacity
        self._stamp = now

    def level(self, now: float) -> float:
        if now > self._stamp:
            self._tokens = min(
                self.capacity, self._tokens + (now - self._stamp) * self.refill_per_s
            )
            self._stamp = now
        return self._tokens

    def wait(self, now: float) -> float:
        """Seconds until one whole token is there (0 when it already is)."""
        missing = 1.0 - self.level(now)
        if missing <= _EPSILON:
            return 0.0
        return math.inf if self.refill_per_s <= 0 else missing / self.refill_per_s

    def take(self, now: float) -> None:
        self._tokens = max(0.0, self.level(now) - 1.0)


@dataclass(frozen=True)
class Rate:
    capacity: float
    refill_per_s: float

    def scaled(self, factor: float) -> Rate:
        # A bucket that can never hold one token would throttle forever.
        return Rate(max(1.0, self.capacity * factor), self.refill_per_s * factor)


def _compute_defaults(kind: str) -> Rate:
    # Flexible members and single VMs are read with the cheaper GET VM policy.
    if kind == "uniform":
        return Rate(6000, 2000 / 60)
    return Rate(24000, 8000 / 60)


@dataclass(frozen=True)
class ThrottleConfig:
    enabled: bool = True
    scale: float = 1.0
    kind: str = "uniform"
    arm_reads: Rate = Rate(250, 25)
    arm_subscription_reads: Rate = Rate(3750, 375)
    compute_subscription: Rate = field(default_factory=lambda: _compute_defaults("uniform"))
    compute_vm: Rate = Rate(36, 12 / 60)

    @property
    def policies(self) -> tuple[str, str]:
        if self.kind == "uniform":
            return (
                "Microsoft.Compute/GetVMScaleSetVM3Min",
                "Microsoft.Compute/GetVMScaleSetVM30Min",
            )
        return ("Microsoft.Compute/LowCostGet3Min", "Microsoft.Compute/LowCostGet30Min")


def _arm_rate(value: Any, where: str, default: Rate) -> Rate:
    data = spec.mapping(value, where, ("bucket", "refill_per_s"))
    capacity = spec.number(
        data.get("bucket", default.capacity), spec.key(where, "bucket"), minimum=1
    )
    refill = spec.number(
        data.get("refill_per_s", default.refill_per_s), spec.key(where, "refill_per_s")
    )
    return Rate(capacity, refill)


def _compute_rate(value: Any, where: str, default: Rate) -> Rate:
    data = spec.mapping(value, where, ("per_min", "burst"))
    per_min = spec.number(
        data.get("per_min", default.refill_per_s * 60), spec.key(where, "per_min")
    )
    burst = spec.number(data.get("burst", default.capacity), spec.key(where, "burst"), minimum=1)
    return Rate(burst, per_min / 60)


def parse_throttle(value: Any, where: str, kind: str) -> ThrottleConfig:
    base = ThrottleConfig(kind=kind, compute_subscription=_compute_defaults(kind))
    data = spec.mapping(
        {} if value is None else value,
        where,
        (
            "enabled",
            "scale",
            "arm_reads",
            "arm_subscription_reads",
            "compute_subscription",
            "compute_vm",
        ),
    )
    return ThrottleConfig(
        enabled=spec.boolean(data.get("enabled", True), spec.key(where, "enabled")),
        scale=spec.number(data.get("scale", 1.0), spec.key(where, "scale"), minimum=1e-6),
        kind=kind,
        arm_reads=_arm_rate(
            data.get("arm_reads", {}), spec.key(where, "arm_reads"), base.arm_reads
        ),
        arm_subscription_reads=_arm_rate(
            data.get("arm_subscription_reads", {}),
            spec.key(where, "arm_subscription_reads"),
            base.arm_subscription_reads,
        ),
        compute_subscription=_compute_rate(
            data.get("compute_subscription", {}),
            spec.key(where, "compute_subscription"),
            base.compute_subscription,
        ),
        compute_vm=_compute_rate(
            data.get("compute_vm", {}), spec.key(where, "compute_vm"), base.compute_vm
        ),
    )


@dataclass(frozen=True)
class Verdict:
    """What one VM GET met: allowed or not, and the budget left afterwards."""

    allowed: bool
    retry_after: int | None
    limiter: str | None
    subscription_reads: int  # this principal's bucket
    global_reads: int  # the subscription's, across principals
    compute_short: int
    compute_long: int

    def headers(self, config: ThrottleConfig) -> dict[str, str]:
        short, long = config.policies
        return {
            "x-ms-ratelimit-remaining-subscription-reads": str(self.subscription_reads),
            "x-ms-ratelimit-remaining-subscription-global-reads": str(self.global_reads),
            "x-ms-ratelimit-remaining-resource": (
                f"{short};{self.compute_short},{long};{self.compute_long}"
            ),
        }


class Throttle:
    """All buckets that one ARM VM GET passes through, consumed all or nothing."""

    def __init__(self, config: ThrottleConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._principal: dict[str, TokenBucket] = {}
        self._vm: dict[int, TokenBucket] = {}
        now = clock()
        scale = config.scale
        self._principal_rate = config.arm_reads.scaled(scale)
        self._arm_subscription = self._bucket(config.arm_subscription_reads.scaled(scale), now)
        self._compute_subscription = self._bucket(config.compute_subscription.scaled(scale), now)
        # Compute also reports a 30-minute window refilled at the per-minute rate.
        per_min = config.compute_subscription.refill_per_s * 60
        self._compute_long = self._bucket(Rate(per_min * 30, per_min / 60).scaled(scale), now)

    @staticmethod
    def _bucket(rate: Rate, now: float) -> TokenBucket:
        return TokenBucket(rate.capacity, rate.refill_per_s, now)

    def request(self, principal: str, vm: int) -> Verdict:
        with self._lock:
            now = self._clock()
            if principal not in self._principal:
                self._principal[principal] = self._bucket(self._principal_rate, now)
            if vm not in self._vm:
                self._vm[vm] = self._bucket(self.config.compute_vm, now)
            buckets = {
                "arm_reads": self._principal[principal],
                "arm_subscription_reads": self._arm_subscription,
                "compute_subscription": self._compute_subscription,
                "compute_subscription_30min": self._compute_long,
                "compute_vm": self._vm[vm],
            }
            waits = {name: bucket.wait(now) for name, bucket in buckets.items()}
            limiter = max(waits, key=lambda name: waits[name])
            allowed = not self.config.enabled or waits[limiter] == 0.0
            if allowed:
                for bucket in buckets.values():
                    bucket.take(now)
            retry_after = None
            if not allowed:
                retry_after = max(1, math.ceil(min(waits[limiter], 86400.0) - _EPSILON))
            return Verdict(
                allowed=allowed,
                retry_after=retry_after,
                limiter=None if allowed else limiter,
                subscription_reads=math.floor(buckets["arm_reads"].level(now)),
                global_reads=math.floor(self._arm_subscription.level(now)),
                compute_short=math.floor(self._compute_subscription.level(now)),
                compute_long=math.floor(self._compute_long.level(now)),
            )
