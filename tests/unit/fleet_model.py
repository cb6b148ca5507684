"""A scale-out on a fake clock: the real WaitPolicy per VM, the simulator's real Throttle.

Each VM's agent starts at its own boot time, reads once, and then sleeps whatever
its WaitPolicy says; the shared Throttle answers every read (or refuses it with
Retry-After) and supplies the budget headers. No processes, no HTTP: a thousand
VMs run in well under a second, so tests can pin fleet-level behaviour.
"""

from __future__ import annotations

import heapq
import random
import statistics
from dataclasses import dataclass

from azwait.policy import Graces, WaitPolicy
from azwait.sim.throttle import Throttle, ThrottleConfig
from azwait.transient import Transient

INTERVAL = 5.0
COMPUTE_REFILL_PER_S = 2000 / 60


@dataclass
class Outcome:
    reads: list[float]  # times of every read
    throttled: int
    delays: list[float]  # flip -> the read that saw Succeeded
    booted: float  # when the last agent made its first read
    refill: float  # the scaled Compute subscription refill, reads/s

    def peak_rate(self, since: float, window: float = 10.0) -> float:
        end = max(self.reads)
        best, start = 0, since
        while start + window <= end:
            best = max(best, sum(1 for t in self.reads if start <= t < start + window))
            start += 1.0
        return best / window

    def p(self, share: float) -> float:
        return statistics.quantiles(self.delays, n=100)[round(share * 100) - 1]


def run(vms: int, boot_spread: float = 40.0, flips: tuple[float, float] = (30.0, 120.0),
        seed: int = 7) -> Outcome:
    rng = random.Random(seed)
    now = 0.0
    throttle = Throttle(ThrottleConfig(scale=vms / 1000), clock=lambda: now)
    boots = [rng.uniform(0.0, boot_spread) for _ in range(vms)]
    flip_at = [boot + rng.uniform(*flips) for boot in boots]
    graces = Graces(imds=600, identity=600, rbac=600)
    policies = [WaitPolicy(INTERVAL, graces, rng=random.Random(rng.random())) for _ in range(vms)]
    queue = [(boot + policy.start_offset(), vm) for vm, (boot, policy)
             in enumerate(zip(boots, policies))]
    heapq.heapify(queue)
    reads, delays, throttled = [], [], 0
    booted = 0.0
    first_read = set()
    while queue:
        now, vm = heapq.heappop(queue)
        if vm not in first_read:
            first_read.add(vm)
            booted = max(booted, now)
        reads.append(now)
        verdict = throttle.request("scale-set identity", vm)
        policy = policies[vm]
        if not verdict.allowed:
            throttled += 1
            delay = policy.on_failure(Transient("retry", "429", verdict.retry_after), now)
        else:
            state = "Succeeded" if now >= flip_at[vm] else "Creating"
            next_delay = policy.on_state(state, verdict.headers(throttle.config), now)
            if next_delay is None:
                delays.append(now - flip_at[vm])
                continue
            delay = next_delay
        heapq.heappush(queue, (now + delay, vm))
    return Outcome(reads, throttled, delays, booted, COMPUTE_REFILL_PER_S * vms / 1000)
