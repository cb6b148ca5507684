"""The wait policy's decisions, as tables, with a fake clock and a seeded RNG."""

from __future__ import annotations

import random

import pytest

from azwait.errors import IdentityError, NetworkPathError, NotAzure, TerminalState
from azwait.pacer import CYCLE, OPEN
from azwait.policy import (
    BACKOFF_CAP,
    JITTER,
    SHORTEST_TRY,
    START_OFFSET_MAX,
    Graces,
    WaitPolicy,
)
from azwait.transient import Kind, Transient, parse_retry_after

GRACES = Graces(imds=120, identity=300, rbac=600, not_found=120, network=90)


def policy(interval: float = 5.0, on_failed: str = "exit", seed: int = 1) -> WaitPolicy:
    return WaitPolicy(interval, GRACES, on_failed, random.Random(seed))


@pytest.mark.parametrize("state", ["Creating", "Updating", "Migrating", "SomethingNew"])
def test_not_yet_states_wait(state: str) -> None:
    """Non-terminal states keep polling at the jittered interval."""
    delay = policy().on_state(state, {})
    assert delay is not None and 5 * (1 - JITTER) <= delay <= 5 * (1 + JITTER)


def test_succeeded_ends() -> None:
    """Succeeded, in any letter case, ends the wait."""
    assert policy().on_state("Succeeded", {}) is None
    assert policy().on_state("succeeded", {}) is None


@pytest.mark.parametrize("state", ["Failed", "Canceled", "Deleting", "deleting"])
def test_terminal_states(state: str) -> None:
    """Failed, Canceled and Deleting are terminal (exit 4)."""
    with pytest.raises(TerminalState) as caught:
        policy().on_state(state, {})
    assert caught.value.exit_code == 4 and state in caught.value.message


def test_failed_can_be_waited_through() -> None:
    """AZWAIT_ON_FAILED=wait keeps polling through Failed, but not through Deleting."""
    p = policy(on_failed="wait")
    assert p.on_state("Failed", {}) is not None
    with pytest.raises(TerminalState):
        p.on_state("Deleting", {})


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
        assert p.on_failure(Transient(Kind.RETRY, "429", retry_after), 0.0) >= retry_after


def test_backoff_grows_and_is_capped() -> None:
    """Repeated failures back off exponentially up to the cap."""
    p = policy(interval=5.0)
    delays = [p.on_failure(Transient(Kind.RETRY, "500"), float(i)) for i in range(12)]
    assert delays[0] <= 5.0 and delays[3] > delays[0]
    assert max(delays) <= BACKOFF_CAP


def test_success_resets_backoff() -> None:
    """A good reading resets the failure streak."""
    p = policy()
    for i in range(6):
        p.on_failure(Transient(Kind.RETRY, "500"), float(i))
    p.on_state("Creating", {})
    assert p.on_failure(Transient(Kind.RETRY, "500"), 11.0) <= 5.0


@pytest.mark.parametrize("kind,grace,error,code", [
    (Kind.IMDS, 120, NotAzure, 5),
    (Kind.IDENTITY, 300, IdentityError, 6),
    (Kind.RBAC, 600, IdentityError, 6),
    (Kind.NOT_FOUND, 120, TerminalState, 4),
    (Kind.NETWORK, 90, NetworkPathError, 8),
])
def test_grace_windows(kind: Kind, grace: float, error: type, code: int) -> None:
    """Each failure kind is retried for its grace window, then fails with its exit code."""
    p = policy()
    assert p.on_failure(Transient(kind, "x"), 0.0) > 0
    assert p.on_failure(Transient(kind, "x"), grace - 1) <= 1.0  # last try at the window's end
    with pytest.raises(error) as caught:
        p.on_failure(Transient(kind, "x"), grace)
    assert caught.value.exit_code == code


def test_a_grace_runs_from_the_start_of_the_first_failed_attempt() -> None:
    """An attempt that hung until its own limit counts in full against the grace."""
    p = policy()
    p.on_failure(Transient(Kind.IMDS, "hung"), 5.0, began=0.0)  # tried at 0, gave up at 5
    with pytest.raises(NotAzure, match="AZWAIT_IMDS_GRACE=2m"):
        p.on_failure(Transient(Kind.IMDS, "hung"), 120.0, began=115.0)


def test_attempts_never_outlast_a_running_grace() -> None:
    """No streak: no limit. Then what is left of the grace, but never under a second."""
    p = policy()
    assert p.attempt_limit(0.0) == float("inf")
    p.on_failure(Transient(Kind.RBAC, "403"), 0.0)
    p.on_failure(Transient(Kind.IMDS, "hung"), 10.0, began=5.0)
    assert p.attempt_limit(20.0) == pytest.approx(105.0)  # imds: 5 + 120 - 20
    assert p.attempt_limit(125.0) == SHORTEST_TRY
    p.on_state("Creating", {})
    assert p.attempt_limit(126.0) == float("inf")


@pytest.mark.parametrize("kind,one_look,wait", [
    (Kind.IMDS, "not an Azure VM? x", "(for AZWAIT_IMDS_GRACE=2m)"),
    (Kind.RBAC, "x", "(for AZWAIT_RBAC_GRACE=10m)"),
    (Kind.NETWORK, "x", "(for AZWAIT_NETWORK_GRACE=1m30s)"),
    (Kind.NOT_FOUND, "may not be visible yet", "even after 2m of replication lag"),
])
def test_one_look_errors_do_not_speak_of_waiting(kind: Kind, one_look: str, wait: str) -> None:
    """The same failure reads as one look in status and as a spent grace in a wait."""
    look = WaitPolicy(5.0, Graces.none()).fatal(Transient(kind, "x"))
    assert one_look in look.message and "GRACE" not in look.message
    assert wait in policy().fatal(Transient(kind, "x")).message


def test_plain_retries_have_no_grace() -> None:
    """Throttling and 5xx are bounded only by the overall timeout."""
    p = policy()
    assert p.on_failure(Transient(Kind.RETRY, "503"), 1e6) > 0


def test_not_found_after_seen_is_terminal() -> None:
    """404 after the VM was seen means it was deleted: exit 4 at once."""
    p = policy()
    p.on_state("Creating", {})
    with pytest.raises(TerminalState, match="deleted"):
        p.on_failure(Transient(Kind.NOT_FOUND, "ARM has no resource /x"), 1.0)


def test_identity_message_says_how_to_fix() -> None:
    """The no-identity error tells how to assign an identity with Reader."""
    p = policy()
    p.on_failure(Transient(Kind.IDENTITY, "no managed identity"), 0.0)
    with pytest.raises(IdentityError, match="Reader"):
        p.on_failure(Transient(Kind.IDENTITY, "no managed identity"), 300.0)


@pytest.mark.parametrize("value,seconds", [
    (None, None), ("", None), ("7", 7.0), ("0", 0.0), ("soon", None),
    ("Wed, 21 Oct 2026 07:28:10 GMT", 10.0),
])
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    """Retry-After in delta-seconds or HTTP-date form."""
    now = 1792567680.0  # Wed, 21 Oct 2026 07:28:00 GMT
    assert parse_retry_after(value, now=now) == seconds


def test_a_fleet_reads_only_in_the_open_part_of_the_shared_cycle() -> None:
    """Once in a fleet, every next look lands in the first OPEN s of a CYCLE-s cycle of the
    wall clock, wherever the jittered interval would have put it."""
    now = 1_000_003.7
    p = WaitPolicy(5.0, GRACES, rng=random.Random(3), wall=lambda: now)
    p.pacer.fleet = True
    landed = [(now + p.poll_delay()) % CYCLE for _ in range(500)]
    assert all(at < OPEN for at in landed)
    assert max(landed) - min(landed) > OPEN * 0.9  # spread over the open part


def test_a_lone_vm_is_not_held_to_the_cycle() -> None:
    """No sign of a fleet: the plain jittered interval, at any phase."""
    p = WaitPolicy(5.0, GRACES, rng=random.Random(3), wall=lambda: 1_000_003.7)
    delays = [p.poll_delay() for _ in range(200)]
    assert min(delays) >= 5 * (1 - JITTER) and max(delays) <= 5 * (1 + JITTER)
