"""A scale-out on a fake clock: the real WaitPolicy per VM, the simulator's real Throttle.

Each VM's agent makes its first read at its own boot time, then sleeps whatever its
WaitPolicy says; the shared Throttle answers every read, or refuses it with 429 and
Retry-After, and supplies the budget counters, a 429's included. The seed loop (every
10 s, no jitter, nothing learnt from a 429) runs on the same boots and flips. No
processes and no HTTP, so a real 1,000 or 5,000 VMs run in seconds, at real limits.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from azwait.policy import Graces, WaitPolicy
from azwait.transient import Kind, Transient
from azwait_sim.throttle import Throttle, ThrottleConfig

from .fleet_figures import Trace, least_left, tightest_refill

INTERVAL = 5.0
SEED_INTERVAL = 10.0
BOOT_SPREAD = 60.0  # a scale-out's VMs boot over its first minute
FLIP_WINDOW = (30.0, 120.0)  # each VM turns Succeeded this long after it booted
GRACES = Graces(imds=600, identity=600, rbac=600)
CLOCK_SKEW = 0.1  # seconds either way between VMs' clocks, kept by the host's time sync


@dataclass(frozen=True)
class Fleet:
    """Who boots when and flips when: the same for every policy run on it."""

    vms: int
    scale_sets: int
    boots: list[float]
    flips: list[float]
    seed: int

    @classmethod
    def draw(cls, vms: int, scale_sets: int = 1, seed: int = 7,
             boot_spread: float = BOOT_SPREAD) -> Fleet:
        rng = random.Random(seed)
        boots = [rng.uniform(0.0, boot_spread) for _ in range(vms)]
        flips = [boot + rng.uniform(*FLIP_WINDOW) for boot in boots]
        return cls(vms, scale_sets, boots, flips, seed)


def run(fleet: Fleet, policy: str = "azwait", name: str = "", scale: float = 1.0) -> Trace:
    """The whole scale-out under ``policy`` ("azwait" or "seed"); ``scale`` < 1 shrinks
    the shared buckets as make bench-fleet does, to stand a few VMs in for many."""
    now = 0.0
    throttle = Throttle(ThrottleConfig(scale=scale), clock=lambda: now)
    rng = random.Random(fleet.seed)
    epoch = rng.uniform(0.0, 1e6)  # the wall clock at the model's zero

    def wall(skew: float) -> Callable[[], float]:
        return lambda: epoch + now + skew

    agents: list[Optional[WaitPolicy]] = [
        WaitPolicy(INTERVAL, GRACES, rng=random.Random(rng.random()),
                   wall=wall(rng.uniform(-CLOCK_SKEW, CLOCK_SKEW)))
        if policy == "azwait" else None for _ in range(fleet.vms)]
    first = [boot + (agent.start_offset() if agent else SEED_INTERVAL)
             for boot, agent in zip(fleet.boots, agents)]
    queue = [(t, vm) for vm, t in enumerate(first)]
    heapq.heapify(queue)
    reads: list[tuple[float, int]] = []
    budgets: list[dict[str, str]] = []
    started: list[Optional[float]] = [None] * fleet.vms
    while queue:
        now, vm = heapq.heappop(queue)
        verdict = throttle.request(f"scale set {vm % fleet.scale_sets}", vm)
        headers = verdict.headers(throttle.config)
        budgets.append(headers)
        reads.append((now, 200 if verdict.allowed else 429))
        agent = agents[vm]
        delay: Optional[float]
        if not verdict.allowed:
            delay = SEED_INTERVAL if agent is None else agent.on_failure(
                Transient(Kind.RETRY, "429", verdict.retry_after, headers), now)
        else:
            state = "Succeeded" if now >= fleet.flips[vm] else "Creating"
            delay = (None if state == "Succeeded" else SEED_INTERVAL) if agent is None \
                else agent.on_state(state, headers)
            if delay is None:
                started[vm] = now
                continue
        heapq.heappush(queue, (now + delay, vm))
    return Trace(
        scenario=name or f"model {fleet.vms} VMs, {fleet.scale_sets} identities",
        policy=policy, refill=tightest_refill(scale, fleet.scale_sets),
        flips=list(fleet.flips), started=started, failed=[s is None for s in started],
        reads=reads, fleet_up=max(first), least_left=least_left(budgets, scale))
