"""The fleet pacer: budget counters in, stretch out, on a fake clock."""

from __future__ import annotations

import pytest

from azwait.pacer import (
    CYCLE,
    GLOBAL,
    JOIN,
    MIN_PHASE,
    OPEN,
    PRINCIPAL,
    STEP,
    TARGET,
    Pacer,
    parse_budget,
    window_of,
)

PRINCIPAL_HEADER = "x-ms-ratelimit-remaining-subscription-reads"
GLOBAL_HEADER = "x-ms-ratelimit-remaining-subscription-global-reads"
RESOURCE_HEADER = "x-ms-ratelimit-remaining-resource"


def answer(principal: int | None = None, glob: int | None = None,
           short: int | None = None, long: int | None = None) -> dict[str, str]:
    headers = {}
    if principal is not None:
        headers[PRINCIPAL_HEADER] = str(principal)
    if glob is not None:
        headers[GLOBAL_HEADER] = str(glob)
    policies = []
    if short is not None:
        policies.append(f"Microsoft.Compute/GetVMScaleSetVM3Min;{short}")
    if long is not None:
        policies.append(f"Microsoft.Compute/GetVMScaleSetVM30Min;{long}")
    if policies:
        headers[RESOURCE_HEADER] = ",".join(policies)
    return headers


@pytest.mark.parametrize("headers,expected", [
    ({}, {}),
    ({PRINCIPAL_HEADER: "249", GLOBAL_HEADER: "3749"}, {PRINCIPAL: 249, GLOBAL: 3749}),
    ({"X-Ms-Ratelimit-Remaining-Subscription-Reads": " 11 "}, {PRINCIPAL: 11}),
    ({RESOURCE_HEADER: "Microsoft.Compute/GetVMScaleSetVM3Min;999,"
                       "Microsoft.Compute/GetVMScaleSetVM30Min;4998"},
     {"Microsoft.Compute/GetVMScaleSetVM3Min": 999,
      "Microsoft.Compute/GetVMScaleSetVM30Min": 4998}),
    ({RESOURCE_HEADER: "garbage", PRINCIPAL_HEADER: "-1", GLOBAL_HEADER: ""}, {}),
])
def test_parse_budget_reads_every_counter_in_its_real_format(
        headers: dict[str, str], expected: dict[str, int]) -> None:
    """The per-principal, subscription-wide and Compute policy counters, as ARM sends them
    (header samples from Azure/azure-powershell#26256 and Azure/azure-cli-extensions#6832)."""
    assert parse_budget(headers) == expected


@pytest.mark.parametrize("name,window", [
    (PRINCIPAL, 10.0), (GLOBAL, 10.0),
    ("Microsoft.Compute/GetVMScaleSetVM3Min", 180.0),
    ("Microsoft.Compute/LowCostGet30Min", 1800.0),
    ("Microsoft.Compute/HighCostGet0Min", None),
    ("Microsoft.Compute/SomethingNew", None),
])
def test_windows_come_from_arm_docs_and_from_policy_names(name: str, window: float | None
                                                          ) -> None:
    """ARM's buckets refill in 10 s (250 at 25/s); a Compute policy's window is in its name."""
    assert window_of(name) == window


def test_a_lone_vm_never_stretches() -> None:
    """Full buckets at every look, as a VM alone sees them: the base interval, always."""
    pacer = Pacer(5.0)
    for _ in range(50):
        pacer.observe(answer(249, 3749, 5999, 59999))
        assert pacer.stretch == 1.0


def test_no_counters_keep_the_base_interval() -> None:
    """A proxy that strips the counters leaves the plain jittered interval (and the
    wait policy's Retry-After and backoff)."""
    pacer = Pacer(5.0)
    for _ in range(10):
        pacer.observe({})
    assert pacer.stretch == 1.0 and not pacer.fleet


def test_the_first_answer_from_a_drained_principal_bucket_slows_the_agent() -> None:
    """Cold start: before it has ever seen the per-principal bucket full, its size is a
    fifteenth of the subscription's (ARM's documented ratio), so a first look at 20 of
    250 already shows a drained bucket."""
    pacer = Pacer(5.0)
    pacer.observe(answer(principal=20, glob=3700))
    assert pacer.fleet and pacer.stretch >= JOIN


def test_the_first_answer_from_a_drained_compute_policy_slows_the_agent() -> None:
    """A shorter Compute window allows at least the longer one's rate, so it holds at least
    its capacity x the window ratio: 3Min at 3,000 beside 30Min at 59,000 is half empty."""
    pacer = Pacer(5.0)
    pacer.observe(answer(principal=249, glob=3749, short=3000, long=59000))
    assert pacer.stretch > 1.0


def test_a_lower_first_count_is_not_mistaken_for_a_drain_without_a_reference() -> None:
    """With no subscription-wide counter and no history, a count says nothing of its size."""
    pacer = Pacer(5.0)
    pacer.observe(answer(principal=20))
    assert pacer.stretch == 1.0


def test_the_stretch_never_passes_the_longest_interval() -> None:
    """However drained, no interval exceeds the cap (MAX_INTERVAL), and no 429 either."""
    pacer = Pacer(5.0)
    for look in range(40):
        pacer.observe(answer(principal=0, glob=3700), refused=look % 2 == 0)
    assert 1.0 < pacer.stretch <= pacer.max_stretch


class Wall:
    """A wall clock the test sets: the duty cycle's phase is read from it."""

    def __init__(self, at: float = 1_000_000.0) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at

    def phase(self, seconds: float) -> None:
        """Move to ``seconds`` into the next cycle."""
        self.at = (self.at // CYCLE + 1) * CYCLE + seconds


def joined(wall: Wall) -> Pacer:
    """A pacer that has seen the shared bucket drained once: in the fleet, at JOIN."""
    pacer = Pacer(5.0, wall=wall)
    wall.phase(10.0)
    pacer.observe(answer(principal=100, glob=3749))
    assert pacer.fleet and pacer.stretch == JOIN
    return pacer


@pytest.mark.parametrize("phase,remaining,stretch", [
    # 2 s into the open part, 50 reads below full (249): the fleet read at (0.2)(1 + 1) = 0.4
    # of the refill, on target: no change.
    (2.0, 199, JOIN),
    # 150 below: 0.8 of the refill, twice the target: twice the interval.
    (2.0, 99, 2 * JOIN),
    # Full in the open part: the fleet reads under q x the refill: relax, at most STEP.
    (2.0, 249, JOIN * OPEN / CYCLE / TARGET),
    # Emptied: demand far over, but no single look moves more than STEP.
    (1.0, 0, JOIN * STEP),
    # In the closed part a count says nothing of the rate: hold.
    (12.0, 0, JOIN),
    # Too early in the open part to tell a rate from noise: hold.
    (MIN_PHASE / 2, 100, JOIN),
])
def test_one_reading_in_the_open_part_gives_the_fleets_rate(phase: float, remaining: int,
                                                             stretch: float) -> None:
    """A reading phi s into the open part, d reads below full, says the fleet reads at
    q(1 + d/(R phi)) of the refill R; the stretch moves toward TARGET by that factor."""
    wall = Wall()
    pacer = joined(wall)
    wall.phase(phase)
    pacer.observe(answer(principal=remaining, glob=3749))
    assert pacer.stretch == pytest.approx(stretch)


def test_compute_counters_give_the_rate_in_the_same_units() -> None:
    """Compute's 3-minute policy drains by seconds of its own refill like ARM's bucket:
    2 s in, 66.7 below full (33.3/s) reads as 0.4 of Compute's refill."""
    wall = Wall()
    pacer = Pacer(5.0, wall=wall)
    wall.phase(10.0)
    pacer.observe(answer(principal=249, glob=3749, short=5000, long=59999))
    assert pacer.fleet
    wall.phase(2.0)
    pacer.observe(answer(principal=249, glob=3749, short=5999 - 67, long=59999 - 67))
    assert pacer.stretch == pytest.approx(JOIN * 0.4 * (1 + 67 / 66.67) / 2 / TARGET, rel=0.02)


def test_a_429_steps_up_in_a_fleet_and_joins_one_otherwise() -> None:
    """A refused read hides how far over the fleet is: one STEP in a fleet; a first 429
    is evidence of one: the join, no more."""
    wall = Wall()
    pacer = joined(wall)
    pacer.observe(answer(principal=0, glob=3700), refused=True)
    assert pacer.stretch == JOIN * STEP
    alone = Pacer(5.0, wall=wall)
    alone.observe(answer(principal=0, glob=3700), refused=True)
    assert alone.fleet and alone.stretch == JOIN


def test_a_429_without_counters_doubles_the_plain_interval() -> None:
    """Nothing to read: no duty cycle, today's doubling (the policy adds Retry-After)."""
    pacer = Pacer(5.0)
    pacer.throttled()
    pacer.throttled()
    assert pacer.stretch == 4.0 and not pacer.fleet
