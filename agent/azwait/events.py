"""azwait events: drain the worker before Azure takes the VM.

IMDS Scheduled Events announces Spot evictions (Preempt, ~30 s notice), scale-in
(Terminate, 5-15 min when enabled), reboots, redeploys and freezes. For each new
event that names this VM and is of a type to drain, run AZWAIT_DRAIN_COMMAND
(argv, the event as JSON on stdin and in AZWAIT_EVENT_*), bounded by
AZWAIT_DRAIN_TIMEOUT and the event's NotBefore; then approve it, so the platform
goes ahead without waiting out the notice.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import math
import os
import random
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

from . import clients
from .config import Config
from .engine import Done, Engine, NotYet, Step
from .errors import ConfigError, Interrupted
from .imds import ImdsClient, Instance
from .notify import Notifier
from .policy import Graces, WaitPolicy
from .transient import Kind, Transient

PATH = "/metadata/scheduledevents"
API_VERSION = "2020-07-01"
POLL = 1.0  # Azure's advice: about once a second
# The first call switches Scheduled Events on for the VM and can take up to two
# minutes to answer; later ones are quick.
FIRST_TIMEOUT = 150.0
READ_TIMEOUT = 10.0
APPROVE_MARGIN = 2.0  # approve at least this long before NotBefore
# An event in Scheduled with no readable NotBefore: how long its approval is retried.
APPROVE_WITHOUT_NOT_BEFORE = 60.0
KILL_GRACE = 5.0  # SIGTERM -> SIGKILL for a drain that overran


@dataclasses.dataclass(frozen=True)
class Event:
    id: str
    type: str
    status: str
    resources: tuple[str, ...]
    not_before: Optional[float]  # epoch seconds; None once the event has started
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, item: Any) -> Optional[Event]:
        """The event, or None for an item without an EventId: it can be neither told
        apart from the next nor approved."""
        if not isinstance(item, dict) or not item.get("EventId"):
            return None
        resources = item.get("Resources") or []
        return cls(
            id=str(item["EventId"]),
            type=str(item.get("EventType", "")),
            status=str(item.get("EventStatus", "")),
            resources=tuple(str(r) for r in resources if isinstance(r, str)),
            not_before=_parse_time(item.get("NotBefore")),
            raw=item,
        )

    def environment(self) -> dict[str, str]:
        """AZWAIT_EVENT_* for the drain command."""
        fields = {
            "ID": self.id, "TYPE": self.type, "STATUS": self.status,
            "RESOURCES": ",".join(self.resources),
            "NOT_BEFORE": str(self.raw.get("NotBefore") or ""),
            "SOURCE": str(self.raw.get("EventSource") or ""),
            "DESCRIPTION": str(self.raw.get("Description") or ""),
            "DURATION": str(self.raw.get("DurationInSeconds", "")),
        }
        return {f"AZWAIT_EVENT_{name}": value for name, value in fields.items()}


def _parse_time(value: Any) -> Optional[float]:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None  # unreadable: bounded by AZWAIT_DRAIN_TIMEOUT alone


@dataclasses.dataclass(frozen=True)
class Document:
    incarnation: Any
    events: list[Event]
    unreadable: int  # items without an EventId, left out of ``events``


def parse_document(document: Any) -> Document:
    """The IMDS answer. One unreadable item does not hide the events beside it."""
    if not isinstance(document, dict) or not isinstance(document.get("Events"), list):
        raise Transient(Kind.IMDS, "Scheduled Events answer is not an events document")
    items = [Event.from_json(item) for item in document["Events"]]
    events = [event for event in items if event is not None]
    return Document(document.get("DocumentIncarnation"), events, len(items) - len(events))


@dataclasses.dataclass(frozen=True)
class Drained:
    seconds: float
    exit_code: Optional[int]  # None: cut at the limit
    problem: Optional[str] = None  # why it was not run at all


def run_drain(argv: Sequence[str], event: Event, limit: float,
              environ: Mapping[str, str]) -> Drained:
    """Run the drain command for up to ``limit`` s; then SIGTERM, then SIGKILL, its group."""
    if limit <= 0:  # a drain cut as it starts would only leave work half handed back
        return Drained(0.0, None, "no time left before the event's NotBefore")
    started = time.monotonic()
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE,
                                env={**environ, **event.environment()},
                                start_new_session=True)  # its own group: cut as a whole
    except OSError as err:
        return Drained(0.0, None, f"cannot run {argv[0]}: {err.strerror}")
    try:
        proc.communicate(json.dumps(event.raw).encode(), timeout=limit)
        return Drained(time.monotonic() - started, proc.returncode)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        return Drained(time.monotonic() - started, None)
    except BaseException:  # our own SIGTERM mid-drain: leave nothing behind
        _stop_group(proc)
        raise


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    for signum, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


class Watcher:
    """Polls Scheduled Events until SIGTERM; drains and approves this VM's events once each.

    ``clock`` and ``sleep`` are monotonic and time every wait; ``wall`` is read once
    per event, against its NotBefore, which Azure gives as a date. ``drainer`` runs
    the drain command (``run_drain``).
    """

    def __init__(self, config: Config, drain: Sequence[str], log: Any,
                 notifier: Optional[Notifier] = None, imds: Optional[ImdsClient] = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 wall: Callable[[], float] = time.time,
                 rng: Optional[random.Random] = None,
                 drainer: Callable[[Sequence[str], Event, float, Mapping[str, str]],
                                   Drained] = run_drain) -> None:
        if not drain:
            raise ConfigError("azwait events needs AZWAIT_DRAIN_COMMAND (or -- COMMAND)")
        self.config = config
        self.drain = list(drain)
        self.log = log
        self.notifier = notifier or Notifier()
        self.imds = imds or clients.imds(config)
        self.clock = clock
        self.sleep = sleep
        self.wall = wall
        self.drainer = drainer
        self.handled: set[str] = set()
        self._rng = rng or random.Random()
        self._incarnation: Any = None
        self._failures = 0

    def _engine(self, imds_grace: float, deadline: float = math.inf,
                on_failure: Callable[[Transient], None] = lambda _: None) -> Engine:
        """A wait whose IMDS trouble is retried for ``imds_grace`` (backoff from a second)."""
        never = math.inf
        policy = WaitPolicy(POLL, Graces(imds=imds_grace, identity=never, rbac=never,
                                         not_found=never, network=never),
                            rng=self._rng, wall=self.wall)
        return Engine(deadline, policy, self.clock, self.sleep, on_failure=on_failure)

    def run(self) -> int:
        try:
            name = self._vm_name()
            self.log.info("watching Scheduled Events", vm=name, drain=shlex.join(self.drain),
                          types=",".join(self.config.drain_events))
            self.notifier.ready(f"watching Scheduled Events for {name}")
            self._watch(name)
        except Interrupted as stop:
            if stop.signum != signal.SIGTERM:
                raise
            self.log.info("stopping: SIGTERM")
        return 0

    def _vm_name(self) -> str:
        def attempt(limit: float) -> Step[str]:
            instance: Instance = self.imds.instance(timeout=min(READ_TIMEOUT, limit))
            if not instance.name:
                raise Transient(Kind.IMDS, "IMDS instance document has no compute.name")
            return Done(instance.name)

        return self._engine(self.config.limit("imds_grace")).run(attempt, _unreachable)

    def _watch(self, name: str) -> None:
        """Read the document about once a second, for ever; IMDS trouble is retried for
        ever too (the watcher is a service), said once per outage."""
        timeout = FIRST_TIMEOUT
        engine = self._engine(math.inf, on_failure=self._unavailable)

        def attempt(limit: float) -> Step[None]:
            nonlocal timeout
            document = self._fetch(min(timeout, limit))
            timeout = READ_TIMEOUT
            if self._failures:
                self.log.info("Scheduled Events back", after_failures=self._failures)
                self._failures = 0
            if document.incarnation != self._incarnation:
                self._incarnation = document.incarnation
                if document.unreadable:
                    self.log.warning("events without an EventId: left alone",
                                     count=document.unreadable,
                                     incarnation=document.incarnation)
                for event in document.events:
                    self.consider(event, name)
            return NotYet(POLL)

        engine.run(attempt, _unreachable)

    def _unavailable(self, failure: Transient) -> None:
        self._failures += 1
        if self._failures == 1:
            self.log.warning("Scheduled Events unavailable; retrying", reason=failure.reason)

    def _fetch(self, timeout: float) -> Document:
        response = self.imds.get(PATH, {"api-version": API_VERSION}, timeout)
        if response.status_code != 200:
            raise Transient(Kind.IMDS, f"IMDS answered {response.status_code} for {PATH}")
        try:
            return parse_document(response.json())
        except ValueError:
            raise Transient(Kind.IMDS, "Scheduled Events answer is not JSON") from None

    def consider(self, event: Event, name: str) -> None:
        """Act on one event from the document, once per EventId."""
        if event.id in self.handled:
            return
        self.handled.add(event.id)
        facts = {"event_id": event.id, "type": event.type, "status": event.status,
                 "not_before": event.raw.get("NotBefore") or None,
                 "resources": list(event.resources)}
        if name not in event.resources:
            self.log.info("event for other VMs: left alone", **facts)
            return
        if event.type not in self.config.drain_events:
            self.log.info("event type not drained (AZWAIT_DRAIN_EVENTS): left alone", **facts)
            self.notifier.status(f"last event: {event.type} {event.id}, not drained")
            return
        self.log.warning("event for this VM: draining", **facts)
        self.notifier.status(f"draining: {event.type} {event.id}")
        # NotBefore is a date: read against the wall clock once, here, and kept on the
        # monotonic clock after, so a step of the clock during the drain moves neither
        # the drain's limit nor the approval's.
        now = self.clock()
        limit = self.config.drain_timeout
        until = now + APPROVE_WITHOUT_NOT_BEFORE
        if event.not_before is not None:
            until = now + event.not_before - self.wall()
            limit = min(limit, until - APPROVE_MARGIN - now)
        done = self.drainer(self.drain, event, limit, os.environ)
        if done.problem:
            self.log.error("drain not run", problem=done.problem, **facts)
        elif done.exit_code is None:
            self.log.error("drain cut at its limit", seconds=round(done.seconds, 1),
                           limit=round(limit, 1), **facts)
        else:
            level = "info" if done.exit_code == 0 else "error"
            getattr(self.log, level)("drain finished", seconds=round(done.seconds, 1),
                                     exit_code=done.exit_code, **facts)
        if event.status != "Scheduled":
            self.notifier.status(f"last event: {event.type} {event.id}, drained (already "
                                 f"{event.status or 'started'}, nothing to approve)")
            return
        approved = self._approve(event, until)
        self.notifier.status(f"last event: {event.type} {event.id}, drained, "
                             f"{'approved' if approved else 'NOT approved'}")

    def _approve(self, event: Event, until: float) -> bool:
        """POST StartRequests, retried until ``until`` (NotBefore, monotonic). None is
        sent once it has passed (a drain that ran to it): the platform has gone ahead
        without one, and a late approval would change nothing."""
        body = {"StartRequests": [{"EventId": event.id}]}
        problems: list[str] = []
        engine = self._engine(math.inf, until,
                              on_failure=lambda failure: problems.append(failure.reason))

        def attempt(limit: float) -> Step[int]:
            response = self.imds.request("POST", PATH, {"api-version": API_VERSION},
                                         min(READ_TIMEOUT, limit), body)
            return Done(response.status_code)

        try:
            status = engine.run(attempt, lambda: _NotApproved(
                problems[-1] if problems else "NotBefore passed before it could be sent"))
        except _NotApproved as late:
            self.log.error("event not approved", event_id=event.id, reason=late.reason)
            return False
        if status == 200:
            self.log.info("event approved", event_id=event.id, type=event.type)
            return True
        # 400 and the like: retrying the same request will not change the answer.
        self.log.error("event not approved", event_id=event.id,
                       reason=f"IMDS answered {status} to the approval")
        return False


class _NotApproved(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _unreachable() -> BaseException:
    return AssertionError("a wait without a deadline cannot expire")
