"""The waiter, the lock and the events loop on a fake clock: deadlines, graces,
Retry-After, lock contention, NotBefore, and a wall clock that jumps mid-wait.

Azure's side is scripted here; the same code paths meet the real HTTP simulator in
the integration tests.
"""

from __future__ import annotations

import fcntl
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from azwait.arm import Reading
from azwait.clouds import Endpoint
from azwait.config import Config, load
from azwait.engine import Engine
from azwait.errors import IdentityError, NotAzure, TimeoutExpired
from azwait.events import APPROVE_MARGIN, Drained, Event, Watcher
from azwait.imds import Instance
from azwait.state import LOCK, State
from azwait.transient import Kind, Transient
from azwait.waiter import Waiter

from .clock import FakeClock, Log

INSTANCE = Instance(resource_id="/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/"
                                "virtualMachineScaleSets/ss/virtualMachines/0",
                    vm_id="v", name="ss_0", subscription_id="s", resource_group="g",
                    scale_set="ss", cloud="AzurePublicCloud")
HOUR = 3600.0


def config(tmp_path: Path, **keys: str) -> Config:
    environ = {"AZWAIT_STATE_DIR": str(tmp_path / "state"), "AZWAIT_INTERVAL": "5s",
               **{f"AZWAIT_{name.upper()}": value for name, value in keys.items()}}
    return load({}, environ, Path(os.devnull))


class Imds:
    """IMDS whose answers are scripted by time: ``answer(now, limit)``."""

    def __init__(self, clock: FakeClock,
                 answer: Callable[[float, float], Instance] = lambda now, limit: INSTANCE) -> None:
        self.clock, self.answer = clock, answer
        self.calls: list[tuple[float, float]] = []  # (when, limit)

    def instance(self, timeout: float) -> Instance:
        self.calls.append((self.clock.now, timeout))
        return self.answer(self.clock.now, timeout)

    def hangs(self, now: float, limit: float) -> Instance:
        """Accepts and never answers: the request's own limit ends it."""
        self.clock.advance(limit)
        raise Transient(Kind.IMDS, f"IMDS did not answer in full within {limit:g}s")


class Arm:
    endpoint = Endpoint("https://management.azure.com", "https://management.azure.com/")

    def __init__(self, clock: FakeClock, answer: Callable[[float], Reading],
                 token: Callable[[float, float], None] = lambda now, limit: None) -> None:
        self.clock, self.answer, self.token_answer = clock, answer, token
        self.calls: list[tuple[float, float]] = []
        self.tokens: list[tuple[float, float]] = []  # (when, limit) of each token request

    def token(self, timeout: float) -> None:
        self.tokens.append((self.clock.now, timeout))
        self.token_answer(self.clock.now, timeout)

    def read(self, resource_id: str, timeout: float) -> Reading:
        self.calls.append((self.clock.now, timeout))
        return self.answer(self.clock.now)


def waiter(tmp_path: Path, clock: FakeClock, imds: Imds, arm: Arm, log: Optional[Log] = None,
           started: Optional[float] = None, **keys: str) -> Waiter:
    return Waiter(config(tmp_path, **keys), log or Log(), clock=clock.monotonic,
                  sleep=clock.sleep, rng=random.Random(7), wall=clock.wall,
                  imds=lambda _: imds, arm=lambda _config, _instance: arm, started=started)


def creating(_: float) -> Reading:
    return Reading("Creating", {})


# -- deadlines ------------------------------------------------------------------------

def test_retry_after_never_carries_a_wait_past_its_deadline(tmp_path: Path) -> None:
    """ARM asks for 2 minutes; AZWAIT_TIMEOUT has 30 s: the wait ends at 30 s, and no
    read starts at or after the deadline."""
    clock = FakeClock()
    start = clock.now

    def throttled(_: float) -> Reading:
        raise Transient(Kind.RETRY, "ARM answered 429", retry_after=120.0)

    arm = Arm(clock, throttled)
    w = waiter(tmp_path, clock, Imds(clock), arm, timeout="30s")
    with pytest.raises(TimeoutExpired) as caught:
        w.run(State(str(tmp_path / "state")))
    assert clock.now == pytest.approx(start + 30)
    assert arm.calls and all(when < start + 30 for when, _ in arm.calls)
    assert all(when + limit <= start + 30 + 1e-9 for when, limit in arm.calls)
    assert caught.value.message \
        == "VM state never read (last problem: ARM answered 429) after AZWAIT_TIMEOUT=30s"


def test_the_timeout_message_says_the_last_state(tmp_path: Path) -> None:
    clock = FakeClock()
    w = waiter(tmp_path, clock, Imds(clock), Arm(clock, creating), timeout="1m30s")
    with pytest.raises(TimeoutExpired, match=r"^still Creating after AZWAIT_TIMEOUT=1m30s$"):
        w.run(State(str(tmp_path / "state")))
    assert w.attempt >= 15  # about every 5 s (jittered) for 90 s


def test_succeeded_ends_the_wait_and_leaves_a_marker(tmp_path: Path) -> None:
    clock = FakeClock()
    flip = clock.now + 12
    arm = Arm(clock, lambda now: Reading("Succeeded" if now >= flip else "Creating", {}))
    w = waiter(tmp_path, clock, Imds(clock), arm)
    state = State(str(tmp_path / "state"))
    assert w.run(state) == INSTANCE.resource_id
    assert flip <= clock.now <= flip + 5 * 1.15 + 0.5
    assert state.vouching(w.config.imds_endpoint, None) is not None


def test_the_start_offset_counts_from_the_agents_start(tmp_path: Path) -> None:
    """The first ARM read waits for the random start offset, counted from when the agent
    started: time already spent (loading, IMDS, the token) is inside it, not added."""
    succeeded = Reading("Succeeded", {})
    offset = random.Random(7).uniform(0.0, 0.5)  # the policy's first draw with this seed
    assert offset > 0.05

    clock = FakeClock()
    arm = Arm(clock, lambda _: succeeded)
    waiter(tmp_path / "a", clock, Imds(clock), arm).run(State(str(tmp_path / "a" / "state")))
    assert arm.calls[0][0] == pytest.approx(clock.now) and clock.slept == [pytest.approx(offset)]

    clock = FakeClock()
    arm = Arm(clock, lambda _: succeeded)
    started = clock.now - offset / 2  # half the offset went on getting here
    waiter(tmp_path / "b", clock, Imds(clock), arm, started=started).run(
        State(str(tmp_path / "b" / "state")))
    assert arm.calls[0][0] == pytest.approx(started + offset)

    clock = FakeClock()
    arm = Arm(clock, lambda _: succeeded)
    waiter(tmp_path / "c", clock, Imds(clock), arm, started=clock.now - 1.0).run(
        State(str(tmp_path / "c" / "state")))
    assert arm.calls[0][0] == clock.now and not any(clock.slept)  # already past it: no pause


def test_the_token_comes_before_the_offset_and_inside_it(tmp_path: Path) -> None:
    """The token is IMDS's, not an ARM read: it is fetched first, and the time it takes
    is inside the start offset; a slow one delays the first read by no more than
    itself."""
    offset = random.Random(7).uniform(0.0, 0.5)
    for token_takes in (offset / 2, offset * 3):
        clock = FakeClock()
        started = clock.now
        arm = Arm(clock, lambda _: Reading("Succeeded", {}),
                  token=lambda _now, _limit, c=clock, took=token_takes: c.advance(took))
        waiter(tmp_path / str(token_takes), clock, Imds(clock), arm, started=started).run(
            State(str(tmp_path / str(token_takes) / "state")))
        assert arm.tokens[0][0] == started and len(arm.tokens) == 1
        assert arm.calls[0][0] == pytest.approx(started + max(offset, token_takes))


def test_no_identity_yet_is_retried_before_any_read(tmp_path: Path) -> None:
    """'Identity not found' while the assignment propagates: the token is asked for
    again within AZWAIT_IDENTITY_GRACE, and ARM is not read until there is one."""
    clock = FakeClock()
    ready = clock.now + 40

    def token(now: float, _limit: float) -> None:
        if now < ready:
            raise Transient(Kind.IDENTITY, "no managed identity: IMDS token endpoint answered 400")

    arm = Arm(clock, lambda _: Reading("Succeeded", {}), token=token)
    log = Log()
    waiter(tmp_path / "a", clock, Imds(clock), arm, log, identity_grace="2m").run(
        State(str(tmp_path / "a" / "state")))
    assert len(arm.tokens) > 2 and arm.calls and arm.calls[0][0] >= ready
    assert log.events("warning") == ["retrying"]  # once per problem, not per retry

    clock = FakeClock()
    ready = clock.now + HOUR
    arm = Arm(clock, lambda _: Reading("Succeeded", {}), token=token)
    with pytest.raises(IdentityError):
        waiter(tmp_path / "b", clock, Imds(clock), arm, identity_grace="30s").run(
            State(str(tmp_path / "b" / "state")))
    assert not arm.calls


def test_the_timeout_counts_from_the_agents_start(tmp_path: Path) -> None:
    clock = FakeClock()
    started = clock.now - 20
    arm = Arm(clock, creating)
    with pytest.raises(TimeoutExpired):
        waiter(tmp_path, clock, Imds(clock), arm, started=started, timeout="30s").run(
            State(str(tmp_path / "state")))
    assert clock.now == pytest.approx(started + 30)


# -- graces ---------------------------------------------------------------------------

def test_a_hanging_imds_ends_with_its_grace_not_after_it(tmp_path: Path) -> None:
    """Each request hangs until its limit; the grace counts from the first one's start,
    and no request is given longer than what is left of it."""
    clock = FakeClock()
    start = clock.now
    imds = Imds(clock)
    imds.answer = imds.hangs
    w = waiter(tmp_path, clock, imds, Arm(clock, creating), imds_grace="12s")
    with pytest.raises(NotAzure, match=r"AZWAIT_IMDS_GRACE=12s"):
        w.run(State(str(tmp_path / "state")))
    assert clock.now <= start + 12 + 1.0  # at most the shortest last try past it
    assert all(limit <= 5.0 for _, limit in imds.calls)


@pytest.mark.parametrize("jump", [HOUR, -HOUR])
def test_a_wall_clock_step_moves_neither_deadline_nor_grace(tmp_path: Path, jump: float) -> None:
    """NTP steps the wall clock by an hour mid-wait: both still end on time."""
    clock = FakeClock()
    start = clock.now
    clock.at(start + 10, lambda: clock.jump_wall(jump))
    w = waiter(tmp_path, clock, Imds(clock), Arm(clock, creating), timeout="40s")
    with pytest.raises(TimeoutExpired):
        w.run(State(str(tmp_path / "state")))
    assert clock.now == pytest.approx(start + 40)

    clock = FakeClock()
    start = clock.now
    clock.at(start + 3, lambda: clock.jump_wall(jump))
    imds = Imds(clock)
    imds.answer = imds.hangs
    w = waiter(tmp_path, clock, imds, Arm(clock, creating), imds_grace="20s")
    with pytest.raises(NotAzure):
        w.run(State(str(tmp_path / "state")))
    assert start + 20 <= clock.now <= start + 21


def test_rbac_refusals_end_with_their_grace(tmp_path: Path) -> None:
    clock = FakeClock()
    start = clock.now

    def forbidden(_: float) -> Reading:
        raise Transient(Kind.RBAC, "ARM answered 403")

    w = waiter(tmp_path, clock, Imds(clock), Arm(clock, forbidden), rbac_grace="2m")
    with pytest.raises(Exception, match=r"ARM answered 403 \(for AZWAIT_RBAC_GRACE=2m\)") as caught:
        w.run(State(str(tmp_path / "state")))
    assert getattr(caught.value, "exit_code", None) == 6
    assert start + 120 <= clock.now <= start + 121


# -- the lock -------------------------------------------------------------------------

@pytest.fixture
def held_lock(tmp_path: Path) -> Iterator[Callable[[], None]]:
    """The per-VM lock held by another open file (as another azwait process holds it)."""
    directory = tmp_path / "state"
    directory.mkdir()
    fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    released = []

    def release() -> None:
        if not released:
            released.append(True)
            fcntl.flock(fd, fcntl.LOCK_UN)

    yield release
    os.close(fd)


def test_a_held_lock_is_waited_for_then_taken(tmp_path: Path,
                                              held_lock: Callable[[], None]) -> None:
    clock = FakeClock()
    clock.at(clock.now + 3, held_lock)
    with State(str(tmp_path / "state")).lock(Engine(clock.now + 60, None, clock.monotonic,
                                                     clock.sleep)) as waited:
        assert waited is True
    assert clock.now == pytest.approx(1003, abs=0.11)


def test_a_lock_held_past_the_deadline_is_a_timeout(tmp_path: Path,
                                                    held_lock: Callable[[], None]) -> None:
    clock = FakeClock()
    start = clock.now
    clock.at(start + 5, lambda: clock.jump_wall(HOUR))  # no effect on the deadline
    lock = State(str(tmp_path / "state")).lock(Engine(start + 30, None, clock.monotonic,
                                                       clock.sleep))
    with pytest.raises(TimeoutExpired, match="another azwait held the wait lock"), lock:
        pass
    assert clock.now == pytest.approx(start + 30)


# -- azwait events --------------------------------------------------------------------

class EventsImds:
    """IMDS for the watcher: the instance document, and approvals that keep failing."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.posts: list[float] = []

    def instance(self, timeout: float) -> Instance:
        self.clock.advance(timeout)
        raise Transient(Kind.IMDS, "IMDS unreachable")

    def request(self, method: str, path: str, params: Any, timeout: float,
                body: Any = None) -> Any:
        self.posts.append(self.clock.now)
        self.clock.advance(0.2)
        raise Transient(Kind.IMDS, "IMDS answered 503 for /metadata/scheduledevents")


class Drains:
    """The drain command on the fake clock: it would take ``takes`` s, is cut at its
    limit, and NTP steps the wall clock by ``step`` while it runs."""

    def __init__(self, clock: FakeClock, takes: float, step: float = 0.0) -> None:
        self.clock, self.takes, self.step = clock, takes, step
        self.limits: list[float] = []

    def __call__(self, argv: Any, event: Event, limit: float, environ: Any) -> Drained:
        self.limits.append(limit)
        if limit <= 0:  # as run_drain: not started at all
            return Drained(0.0, None, "no time left")
        ran = min(self.takes, limit)
        self.clock.advance(ran)
        self.clock.jump_wall(self.step)
        return Drained(ran, 0 if ran == self.takes else None)


def watcher(tmp_path: Path, clock: FakeClock, log: Log, drains: Optional[Drains] = None,
            **keys: str) -> Watcher:
    return Watcher(config(tmp_path, **keys), ["/bin/true"], log,
                   imds=EventsImds(clock),  # type: ignore[arg-type]
                   clock=clock.monotonic, sleep=clock.sleep, wall=clock.wall,
                   rng=random.Random(3), drainer=drains or Drains(clock, 0.0))


def preempt(clock: FakeClock, not_before_in: Optional[float]) -> Event:
    not_before = None if not_before_in is None else clock.wall_now + not_before_in
    return Event("e1", "Preempt", "Scheduled", ("ss_0",), not_before, {})


@pytest.mark.parametrize("step", [0.0, HOUR, -HOUR])
def test_not_before_bounds_drain_and_approval_whatever_the_wall_clock_does(
        tmp_path: Path, step: float) -> None:
    clock = FakeClock()
    start = clock.now
    log = Log()
    drains = Drains(clock, takes=5.0, step=step)  # NTP steps the clock mid-drain
    w = watcher(tmp_path, clock, log, drains)
    w.consider(preempt(clock, 25.0), "ss_0")
    assert drains.limits == [pytest.approx(25.0 - APPROVE_MARGIN)]
    posts = w.imds.posts  # type: ignore[attr-defined]
    # Approvals keep failing: retried from the drain's end until NotBefore, never after.
    assert posts[0] == pytest.approx(start + 5.0)
    assert len(posts) >= 4 and all(when < start + 25 for when in posts)
    assert clock.now <= start + 25 + 0.2
    assert log.events("error") == ["event not approved"]


@pytest.mark.parametrize(("not_before_in", "drain_timeout", "limit"), [
    (25.0, "10s", 10.0),  # the timeout is the nearer bound
    (25.0, "60s", 23.0),  # NotBefore, less the approval's margin
    (1.0, "60s", -1.0),  # too late to drain at all: run_drain does not start it
    (None, "45s", 45.0),  # no NotBefore (an unreadable date): the timeout alone
])
def test_the_drain_limit_is_the_nearer_of_its_timeout_and_not_before(
        tmp_path: Path, not_before_in: Optional[float], drain_timeout: str,
        limit: float) -> None:
    clock = FakeClock()
    drains = Drains(clock, takes=100.0)
    w = watcher(tmp_path, clock, Log(), drains, drain_timeout=drain_timeout)
    w.consider(preempt(clock, not_before_in), "ss_0")
    assert drains.limits == [pytest.approx(limit)]


def test_the_watcher_gives_up_on_imds_after_its_grace(tmp_path: Path) -> None:
    clock = FakeClock()
    start = clock.now
    clock.at(start + 30, lambda: clock.jump_wall(-HOUR))
    with pytest.raises(NotAzure, match=r"AZWAIT_IMDS_GRACE=1m"):
        watcher(tmp_path, clock, Log(), imds_grace="1m").run()
    assert start + 60 <= clock.now <= start + 61
