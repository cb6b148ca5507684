"""The simulator's ARM/Compute token buckets, driven by a fake clock."""

from __future__ import annotations

import pytest

from azwait_sim.throttle import Throttle, ThrottleConfig, TokenBucket, parse_throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def throttle(
    data: dict[str, object] | None = None, kind: str = "uniform"
) -> tuple[Throttle, FakeClock]:
    clock = FakeClock()
    return Throttle(parse_throttle(data or {}, "throttle", kind), clock), clock


def drain(t: Throttle, n: int, principal: str = "p", vm: int = 0) -> None:
    for _ in range(n):
        assert t.request(principal, vm).allowed


def test_bucket_gives_its_burst_then_nothing() -> None:
    """A full bucket hands out exactly `capacity` tokens at one instant."""
    bucket = TokenBucket(3, 1, now=0)
    for _ in range(3):
        assert bucket.wait(0) == 0
        bucket.take(0)
    assert bucket.wait(0) == pytest.approx(1.0)


def test_bucket_refills_at_its_rate_and_caps_at_capacity() -> None:
    """Tokens come back at refill_per_s and never exceed the capacity."""
    bucket = TokenBucket(10, 2, now=0)
    for _ in range(10):
        bucket.take(0)
    assert bucket.level(1.5) == pytest.approx(3.0)
    assert bucket.level(100) == 10


def test_defaults_are_the_documented_limits() -> None:
    """Defaults: ARM 250/25 per principal, x15 per subscription; Compute 6000 burst, 36 per VM."""
    config = parse_throttle(None, "throttle", "uniform")
    assert (config.arm_reads.capacity, config.arm_reads.refill_per_s) == (250, 25)
    assert config.arm_subscription_reads.capacity == 3750
    assert config.compute_subscription.capacity == 6000
    assert config.compute_subscription.refill_per_s * 60 == pytest.approx(2000)
    assert config.compute_vm.capacity == 36
    assert config.compute_vm.refill_per_s * 60 == pytest.approx(12)


def test_per_vm_burst_then_retry_after_is_time_to_next_token() -> None:
    """A VM gets 36 GETs at once; the 37th is refused with Retry-After 5 (12/min)."""
    t, clock = throttle()
    drain(t, 36)
    refused = t.request("p", 0)
    assert not refused.allowed
    assert refused.retry_after == 5
    assert refused.limiter == "compute_vm"
    clock.advance(4.9)
    assert not t.request("p", 0).allowed
    clock.advance(0.1)
    assert t.request("p", 0).allowed


def test_refused_request_consumes_nothing() -> None:
    """A 429 leaves every bucket as it was: the next token comes exactly on time."""
    t, clock = throttle({"compute_vm": {"burst": 1, "per_min": 6}})
    assert t.request("p", 0).allowed
    refused = [t.request("p", 0) for _ in range(5)]
    assert not any(v.allowed for v in refused)
    assert {(v.subscription_reads, v.compute_short) for v in refused} == {(249, 5999)}
    clock.advance(10)
    assert t.request("p", 0).allowed


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    """ARM's principal bucket refills in 40 ms, but Retry-After never says less than 1."""
    t, _ = throttle()
    for vm in range(250):
        assert t.request("p", vm).allowed
    refused = t.request("p", 250)
    assert (refused.allowed, refused.retry_after, refused.limiter) == (False, 1, "arm_reads")


def test_principal_bucket_is_per_principal() -> None:
    """Another principal still has its own 250 reads when one is exhausted."""
    t, _ = throttle()
    for vm in range(250):
        t.request("a", vm)
    assert not t.request("a", 999).allowed
    assert t.request("b", 999).allowed


def test_scale_shrinks_every_shared_bucket_and_keeps_their_ratios() -> None:
    """scale multiplies the principal's, the subscription's and Compute's buckets alike."""
    t, clock = throttle({"scale": 0.2})
    # ARM per principal: 250 * 0.2 = 50 reads, then refused by that bucket.
    for vm in range(50):
        assert t.request("a", vm).allowed
    refused = t.request("a", 50)
    assert (refused.allowed, refused.limiter) == (False, "arm_reads")
    # Refilled at 25 * 0.2 = 5/s: one token every 0.2 s.
    clock.advance(0.2)
    assert t.request("a", 50).allowed
    # The subscription-wide bucket is 15x the principal's at any scale: 750 here,
    # refilled at 375 * 0.2 = 75/s; the refused read took nothing.
    verdict = t.request("b", 2)
    assert verdict.global_reads == 750 - 52 + round(0.2 * 75)
    assert verdict.subscription_reads == 49


def test_per_vm_bucket_stays_real_at_any_scale() -> None:
    """Each simulated VM is one VM: its 36-read burst is not scaled."""
    t, _ = throttle({"scale": 0.01, "arm_reads": {"bucket": 1e6}, "arm_subscription_reads":
                     {"bucket": 1e6}, "compute_subscription": {"burst": 1e6}})
    drain(t, 36)
    assert t.request("p", 0).limiter == "compute_vm"


def test_scaled_compute_subscription_refills_at_scaled_rate() -> None:
    """Compute at scale 0.01: 60 burst, then one GET every 3 s (20/min)."""
    t, clock = throttle({"scale": 0.01, "arm_reads": {"bucket": 1e8},
                         "arm_subscription_reads": {"bucket": 1e8}})
    for vm in range(60):
        assert t.request(f"p{vm}", vm).allowed
    refused = t.request("p-new", 60)
    assert (refused.allowed, refused.limiter, refused.retry_after) == (
        False,
        "compute_subscription",
        3,
    )
    clock.advance(3)
    assert t.request("p-new", 60).allowed


def test_scale_never_makes_a_bucket_that_cannot_hold_a_token() -> None:
    """A tiny scale still leaves one token of capacity, so requests eventually pass."""
    t, _ = throttle({"scale": 1e-6})
    assert t.request("p", 0).allowed


def test_headers_report_remaining_budget() -> None:
    """Headers count down: the principal's and the subscription's ARM reads, and
    Compute's 3- and 30-minute windows, each on its own."""
    t, _ = throttle()
    t.request("other", 1)
    verdict = t.request("p", 0)
    headers = verdict.headers(t.config)
    assert headers["x-ms-ratelimit-remaining-subscription-reads"] == "249"
    assert headers["x-ms-ratelimit-remaining-subscription-global-reads"] == "3748"
    assert headers["x-ms-ratelimit-remaining-resource"] == (
        "Microsoft.Compute/GetVMScaleSetVM3Min;5998,Microsoft.Compute/GetVMScaleSetVM30Min;59998"
    )


@pytest.mark.parametrize("kind", ["flex", "vm"])
def test_vm_reads_use_the_low_cost_get_policy(kind: str) -> None:
    """Flexible members and single VMs report LowCostGet, with its 24,000 burst."""
    t, _ = throttle(kind=kind)
    header = t.request("p", 0).headers(t.config)["x-ms-ratelimit-remaining-resource"]
    assert header.startswith("Microsoft.Compute/LowCostGet3Min;23999,")
    assert ",Microsoft.Compute/LowCostGet30Min;" in header


def test_disabled_throttle_never_refuses_but_still_counts() -> None:
    """enabled=false: no 429, headers still show the budget going down."""
    t, _ = throttle({"enabled": False, "compute_vm": {"burst": 2}})
    verdicts = [t.request("p", 0) for _ in range(5)]
    assert all(v.allowed for v in verdicts)
    assert verdicts[-1].subscription_reads == 245


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"arm_reads": {"bucket": "x"}}, "throttle.arm_reads.bucket"),
        ({"arm_reads": {"size": 1}}, "throttle.arm_reads.size"),
        ({"compute_vm": {"per_min": -1}}, "throttle.compute_vm.per_min"),
        ({"scale": 0}, "throttle.scale"),
        ({"enabled": "yes"}, "throttle.enabled"),
        ({"burst": 1}, "throttle.burst"),
    ],
)
def test_bad_settings_name_the_key(data: dict[str, object], key: str) -> None:
    """Every bad throttle setting is refused with its full key in the message."""
    with pytest.raises(ValueError, match=rf"^{key}: "):
        parse_throttle(data, "throttle", "uniform")


def test_config_is_a_plain_value() -> None:
    """Two configs built from the same input compare equal (a frozen value)."""
    assert parse_throttle({}, "throttle", "uniform") == ThrottleConfig()
