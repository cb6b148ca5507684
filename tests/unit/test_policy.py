"""The wait policy's decisions, as tables, with a fake clock and a seeded RNG."""

from __future__ import annotations

import random

import pytest

from azwait.errors import IdentityError, NotAzure, TerminalState
from azwait.policy import (
    BACKOFF_CAP,
    JITTER,
    MAX_STRETCH,
    MAX_THROTTLED_STRETCH,
    RELAX,
    START_OFFSET_MAX,
    Graces,
    Pacer,
    WaitPolicy,
    parse_budget,
)
from azwait.transient import Transient, parse_retry_after

from . import fleet_model

GRACES = Graces(imds=120, identity=300, rbac=600, not_found=120)


def policy(interval: float = 5.0, on_failed: str = "exit", seed: int = 1) -> WaitPolicy:
    return WaitPolicy(interval, GRACES, on_failed, random.Random(seed))


@pytest.mark.parametrize("state", ["Creating", "Updating", "Migrating", "SomethingNew"])
def test_not_yet_states_wait(state: str) -> None:
    """Non-terminal states keep polling at the jittered interval."""
    delay = policy().on_state(state, {}, 0.0)
    assert delay is not None and 5 * (1 - JITTER) <= delay <= 5 * (1 + JITTER)


def test_succeeded_ends() -> None:
    """Succeeded, in any letter case, ends the wait."""
    assert policy().on_state("Succeeded", {}, 0.0) is None
    assert policy().on_state("succeeded", {}, 0.0) is None


@pytest.mark.parametrize("state", ["Failed", "Canceled", "Deleting", "deleting"])
def test_terminal_states(state: str) -> None:
    """Failed, Canceled and Deleting are terminal (exit 4)."""
    with pytest.raises(TerminalState) as caught:
        policy().on_state(state, {}, 0.0)
    assert caught.value.exit_code == 4 and state in caught.value.message


def test_failed_can_be_waited_through() -> None:
    """AZWAIT_ON_FAILED=wait keeps polling through Failed, but not through Deleting."""
    p = policy(on_failed="wait")
    assert p.on_state("Failed", {}, 0.0) is not None
    with pytest.raises(TerminalState):
        p.on_state("Deleting", {}, 1.0)


def test_jitter_spreads_intervals() -> None:
    """Intervals are jittered: a fleet does not poll in lock-step."""
    p = policy()
    delays = {round(p.poll_delay(), 3) for _ in range(50)}
    assert len(delays) > 40
    assert min(delays) >= 5 * (1 - JITTER) and max(delays) <= 5 * (1 + JITTER)


def test_start_offset_is_small_and_random() -> None:
    """The start offset spreads first reads without delaying a ready VM much."""
    p = policy()
    offsets = [p.start_offset() for _ in range(50)]
    assert all(0 <= o <= START_OFFSET_MAX for o in offsets) and len(set(offsets)) > 40


@pytest.mark.parametrize("retry_after", [1.0, 7.0, 30.0])
def test_retry_after_is_never_undercut(retry_after: float) -> None:
    """A throttled read waits at least Retry-After, whatever the interval."""
    p = policy(interval=0.2)
    for _ in range(20):
        assert p.on_failure(Transient("retry", "429", retry_after), 0.0) >= retry_after


def test_backoff_grows_and_is_capped() -> None:
    """Repeated failures back off exponentially up to the cap."""
    p = policy(interval=5.0)
    delays = [p.on_failure(Transient("retry", "500"), float(i)) for i in range(12)]
    assert delays[0] <= 5.0 and delays[3] > delays[0]
    assert max(delays) <= BACKOFF_CAP


def test_success_resets_backoff() -> None:
    """A good reading resets the failure streak."""
    p = policy()
    for i in range(6):
        p.on_failure(Transient("retry", "500"), float(i))
    p.on_state("Creating", {}, 10.0)
    assert p.on_failure(Transient("retry", "500"), 11.0) <= 5.0


@pytest.mark.parametrize("kind,grace,error,code", [
    ("imds", 120, NotAzure, 5),
    ("identity", 300, IdentityError, 6),
    ("rbac", 600, IdentityError, 6),
    ("not_found", 120, TerminalState, 4),
])
def test_grace_windows(kind: str, grace: float, error: type, code: int) -> None:
    """Each failure kind is retried for its grace window, then fails with its exit code."""
    p = policy()
    assert p.on_failure(Transient(kind, "x"), 0.0) > 0
    assert p.on_failure(Transient(kind, "x"), grace - 1) <= 1.0  # last try at the window's end
    with pytest.raises(error) as caught:
        p.on_failure(Transient(kind, "x"), grace)
    assert caught.value.exit_code == code


def test_plain_retries_have_no_grace() -> None:
    """Throttling and 5xx are bounded only by the overall timeout."""
    p = policy()
    assert p.on_failure(Transient("retry", "503"), 1e6) > 0


def test_not_found_after_seen_is_terminal() -> None:
    """404 after the VM was seen means it was deleted: exit 4 at once."""
    p = policy()
    p.on_state("Creating", {}, 0.0)
    with pytest.raises(TerminalState, match="deleted"):
        p.on_failure(Transient("not_found", "ARM has no resource /x"), 1.0)


def test_identity_message_says_how_to_fix() -> None:
    """The no-identity error tells how to assign an identity with Reader."""
    p = policy()
    p.on_failure(Transient("identity", "no managed identity"), 0.0)
    with pytest.raises(IdentityError, match="Reader"):
        p.on_failure(Transient("identity", "no managed identity"), 300.0)


@pytest.mark.parametrize("headers,expected", [
    ({}, {}),
    ({"x-ms-ratelimit-remaining-subscription-reads": "11999"}, {"subscription-reads": 11999}),
    ({"x-ms-ratelimit-remaining-resource":
      "Microsoft.Compute/GetVMScaleSetVM3Min;179,Microsoft.Compute/GetVMScaleSetVM30Min;1499"},
     {"Microsoft.Compute/GetVMScaleSetVM3Min": 179,
      "Microsoft.Compute/GetVMScaleSetVM30Min": 1499}),
    ({"x-ms-ratelimit-remaining-resource": "garbage"}, {}),
])
def test_parse_budget(headers: dict[str, str], expected: dict[str, int]) -> None:
    """Throttling headers are read in their real formats."""
    assert parse_budget(headers) == expected


@pytest.mark.parametrize("remaining,stretch", [
    ([100, 90], 1.0), ([100, 40], 1.5), ([100, 10], 2.0), ([100, 10, 10, 10, 10, 10], MAX_STRETCH),
    ([100, 10, 10, 90, 90, 90], 4.0 / 1.5**3), ([100, 10, 90, 90, 90], 1.0),
])
def test_pacer_level_fallback(remaining: list[int], stretch: float) -> None:
    """Without a 30-minute counter: stretch as a counter runs low, relax as it recovers."""
    pacer = Pacer()
    for at, value in enumerate(remaining):
        pacer.observe({"x-ms-ratelimit-remaining-subscription-reads": str(value)}, float(at))
    assert pacer.stretch == pytest.approx(stretch)


def compute(short: int, long: int) -> dict[str, str]:
    return {"x-ms-ratelimit-remaining-resource":
            f"Microsoft.Compute/GetVMScaleSetVM3Min;{short},"
            f"Microsoft.Compute/GetVMScaleSetVM30Min;{long}"}


# A 30-minute bucket of 18,000 refills at 10 reads/s; the target is 4 reads/s.
@pytest.mark.parametrize("readings,stretch", [
    ([(0, 18000)], 1.0),                                   # one look: no rate yet
    ([(0, 18000), (10, 17950)], 3.75),                     # 15/s used: 3.75 times the target
    ([(0, 18000), (10, 17900), (20, 17950)], 5 * 1.25),    # 20/s, then 5/s: a little more
    ([(0, 18000), (10, 17700)], 10.0),                     # 40/s: in one step to 10x
    ([(0, 18000), (10, 17700), (20, 17400)], MAX_STRETCH),  # still 40/s: up to the cap
    ([(0, 18000), (10, 17700), (20, 17790)], 10 * RELAX),  # then 1/s: relax, at most x0.5
    ([(0, 18000), (10, 17700), (20, 18000)], 10 * RELAX),  # full again: relax
    ([(0, 18000), (10, 17700), (20, 18000), (30, 18000)], 10 * RELAX * RELAX),  # and again
    ([(0, 17950), (10, 18000)], 1.25),                     # rising to a new high: 5/s, not full
    ([(0, 18000), (10, 17995)], 1.0),                      # within a second's refill of full
    ([(0, 17995), (10, 18000)], 1.0),                      # near full twice: hidden, not 9.5/s
    ([(0, 18000), (10, 18000)], 1.0),                      # never below the base interval
    ([(0, 18000), (10.5, 17980)], (10 + 20 / 10.5) / 4),   # any gap over 1 s gives a rate
    ([(0, 18000), (0.5, 17000)], 1.0),                     # under 1 s apart: too noisy
])
def test_pacer_follows_the_fleets_read_rate(readings: list[tuple[float, int]],
                                            stretch: float) -> None:
    """From its own reads of the 30-minute counter, an agent scales its interval to hold
    the fleet at TARGET_SHARE of the sustainable rate."""
    pacer = Pacer()
    for at, long in readings:
        pacer.observe(compute(6000, long), at)
    assert pacer.stretch == pytest.approx(stretch, rel=1e-3)


def test_pacer_brakes_when_the_burst_bucket_is_nearly_empty() -> None:
    """A nearly empty burst bucket stretches even when the long-term rate looks fine."""
    pacer = Pacer()
    pacer.observe(compute(6000, 18000), 0.0)
    pacer.observe(compute(1000, 18050), 10.0)
    assert pacer.stretch == 2.0


def test_first_wait_after_a_stretch_spans_the_new_interval() -> None:
    """Agents that slow down on the same news do not keep reading in step."""
    delays = []
    for seed in range(200):
        p = policy(seed=seed)
        p.on_state("Creating", compute(6000, 18000), 0.0)
        delay = p.on_state("Creating", compute(6000, 17700), 10.0)  # stretch 1 -> 10
        assert delay is not None
        delays.append(delay)
    assert 5.0 <= min(delays) < 10.0 and 45.0 < max(delays) <= 50.0


def test_throttling_doubles_the_stretch_past_the_budget_cap() -> None:
    """429s may stretch further than the budget alone does, and each return is spread."""
    p = policy()
    delays = [p.on_failure(Transient("retry", "429", retry_after=2.0), float(t))
              for t in range(6)]
    assert p.pacer.stretch == MAX_THROTTLED_STRETCH
    assert all(d >= 2.0 for d in delays)
    assert max(delays) > 2.0 + 5.0  # spread over the stretched interval, not all at 2 s


def test_stretch_applies_to_poll_delay() -> None:
    """A stretched pacer lengthens the poll interval."""
    p = policy()
    p.on_state("Creating", {"x-ms-ratelimit-remaining-subscription-reads": "100"}, 0.0)
    delay = p.on_state("Creating", {"x-ms-ratelimit-remaining-subscription-reads": "5"}, 5.0)
    assert delay is not None and delay >= 2 * 5 * (1 - JITTER)


@pytest.mark.parametrize("value,seconds", [
    (None, None), ("", None), ("7", 7.0), ("0", 0.0), ("soon", None),
    ("Wed, 21 Oct 2026 07:28:10 GMT", 10.0),
])
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    """Retry-After in delta-seconds or HTTP-date form."""
    now = 1792567680.0  # Wed, 21 Oct 2026 07:28:00 GMT
    assert parse_retry_after(value, now=now) == seconds


@pytest.mark.parametrize("boot_spread,seed", [(5.0, 1), (20.0, 3), (40.0, 2)])
def test_a_modelled_fleet_stays_under_budget_and_starts_promptly(boot_spread: float,
                                                                  seed: int) -> None:
    """200 agents with the real policy against the simulator's real buckets, scaled to a
    1,000-VM scale-out, on a fake clock: no 429s, reads held near half the refill once
    the fleet is up, and most flips seen within a minute."""
    outcome = fleet_model.run(200, boot_spread=boot_spread, seed=seed)
    assert outcome.throttled == 0
    assert len(outcome.delays) == 200
    assert outcome.peak_rate(outcome.booted + 30, window=60) <= 0.6 * outcome.refill
    assert outcome.p(0.95) <= 62.0
    assert max(outcome.delays) <= MAX_STRETCH * 5 * (1 + JITTER)
