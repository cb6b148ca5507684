"""What a fleet run measured, and the targets it is held to (issue 13).

One `Trace` per run, whether 200 real agents against the simulator or the fake-clock
model at a real 1,000 or 5,000 VMs, so both are judged by the same code.

The budgets, at real ratios (azure-facts.md; learn.microsoft.com
azure-resource-manager request-limits-and-throttling and virtual-machines
compute-throttling-limits): ARM per principal 250 refilled at 25/s; ARM per
subscription 15x that; Compute 2,000 scale-set-VM GETs a minute per subscription
(burst 6,000); per VM 12 a minute (burst 36). A run of N agents standing for M VMs
scales every shared bucket by N/M.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Optional

from azwait.pacer import GLOBAL, PRINCIPAL, parse_budget

ARM_PRINCIPAL_PER_S = 25.0
ARM_SUBSCRIPTION_PER_S = 375.0
COMPUTE_PER_S = 2000 / 60
WINDOW = 60.0  # seconds: the busiest-window length, the unit Compute's limit is stated in

# Acceptance (issue 13), for every scenario.
TARGET_REFUSED_SHARE = 0.01
TARGET_PEAK_SHARE = 0.5
TARGET_P50_OVER_BOUND = 2.0
TARGET_P95_OVER_BOUND = 4.0


def tightest_refill(scale: float, scale_sets: int) -> float:
    """The fleet's sustainable read rate: its VMs split evenly over scale_sets identities."""
    return scale * min(ARM_PRINCIPAL_PER_S * scale_sets, ARM_SUBSCRIPTION_PER_S, COMPUTE_PER_S)


@dataclass
class Trace:
    scenario: str
    policy: str
    refill: float  # the tightest refill, reads/s (scaled with the run)
    flips: list[float]  # each VM's flip to Succeeded, on the run's clock
    started: list[Optional[float]]  # each worker's start (None: never)
    failed: list[bool]  # agent exited non-zero, or never started its worker
    reads: list[tuple[float, int]]  # (t, HTTP status) of every ARM VM GET
    fleet_up: float  # the last agent's first ARM read
    least_left: dict[str, float] = field(default_factory=dict)  # bucket -> lowest share
    cpu_s: Optional[float] = None
    peak_rss_mb: Optional[float] = None


# Each counter a VM GET's answer carries, as the agent's own parser names it, by how
# the figures name it, with its real capacity.
COUNTERS = {
    PRINCIPAL: ("arm_principal", 250.0),
    GLOBAL: ("arm_subscription", 3750.0),
    "Microsoft.Compute/GetVMScaleSetVM3Min": ("compute_3min", 6000.0),
    "Microsoft.Compute/GetVMScaleSetVM30Min": ("compute_30min", 60000.0),
}


def least_left(budgets: list[dict[str, str]], scale: float) -> dict[str, float]:
    """The lowest share of each bucket that any answer reported."""
    lowest: dict[str, float] = {}
    for budget in budgets:
        for counter, remaining in parse_budget(budget).items():
            if counter in COUNTERS:
                name, capacity = COUNTERS[counter]
                lowest[name] = min(lowest.get(name, 1.0), remaining / (capacity * scale))
    return lowest


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def peak_rate(times: list[float], since: float, window: float = WINDOW) -> float:
    """Reads per second in the busiest window starting at or after ``since`` (1 s steps)."""
    ordered = sorted(t for t in times if t >= since)
    best, j = 0, 0
    for i, start in enumerate(ordered):  # the busiest window starts at a read
        j = max(j, i)
        while j < len(ordered) and ordered[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best / window


def figures(trace: Trace) -> dict[str, Any]:
    n = len(trace.flips)
    delays = [s - f for s, f, bad in zip(trace.started, trace.flips, trace.failed)
              if s is not None and not bad]
    times = [t for t, _ in trace.reads]
    refused = sum(1 for _, status in trace.reads if status == 429)
    bound = n / trace.refill  # N/(2B), B being half the tightest refill
    early = sum(1 for s, f in zip(trace.started, trace.flips) if s is not None and s < f)
    return {
        "vms": n,
        "reads": len(trace.reads),
        "refused_429": refused,
        "refused_share": round(refused / len(trace.reads), 4) if trace.reads else 0.0,
        "failed_agents": sum(trace.failed),
        "workers_before_flip": early,
        "fleet_up_s": round(trace.fleet_up, 1),
        "tightest_refill_per_s": round(trace.refill, 3),
        "peak_60s_after_up_share": round(peak_rate(times, trace.fleet_up) / trace.refill, 3),
        "peak_60s_whole_run_share": round(peak_rate(times, -math.inf) / trace.refill, 3),
        "delay_p50_s": round(statistics.median(delays), 1) if delays else None,
        "delay_p95_s": round(percentile(delays, 0.95), 1) if delays else None,
        "delay_max_s": round(max(delays), 1) if delays else None,
        "bound_s": round(bound, 1),
        "least_left_share": {name: round(share, 3) for name, share
                             in sorted(trace.least_left.items())},
        "cpu_s_total": None if trace.cpu_s is None else round(trace.cpu_s, 1),
        "peak_rss_mb_total": None if trace.peak_rss_mb is None else round(trace.peak_rss_mb, 1),
    }


def verdicts(fig: dict[str, Any]) -> list[tuple[str, bool]]:
    """azwait's targets; each a name and whether this run met it."""
    bound, p50, p95 = fig["bound_s"], fig["delay_p50_s"], fig["delay_p95_s"]
    return [
        ("no failed agent", fig["failed_agents"] == 0),
        ("no worker before its VM's flip", fig["workers_before_flip"] == 0),
        (f"429s <= {TARGET_REFUSED_SHARE:.0%} of reads",
         fig["refused_share"] <= TARGET_REFUSED_SHARE),
        (f"busiest 60 s after the fleet is up <= {TARGET_PEAK_SHARE:.0%} of the tightest refill",
         fig["peak_60s_after_up_share"] <= TARGET_PEAK_SHARE),
        (f"p50 delay <= {TARGET_P50_OVER_BOUND:g}x the bound N/(2B)",
         p50 is not None and p50 <= TARGET_P50_OVER_BOUND * bound),
        (f"p95 delay <= {TARGET_P95_OVER_BOUND:g}x the bound",
         p95 is not None and p95 <= TARGET_P95_OVER_BOUND * bound),
    ]
