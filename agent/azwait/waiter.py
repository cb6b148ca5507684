"""The wait: IMDS → identity → ARM until Succeeded, timed by the wait policy."""

from __future__ import annotations

import math
import random
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import clients
from .config import Config, format_duration
from .engine import Done, Engine, NotYet, Step
from .errors import TimeoutExpired
from .notify import Notifier
from .policy import Graces, WaitPolicy
from .state import State
from .transient import Transient

if TYPE_CHECKING:
    from .arm import ArmClient
    from .imds import ImdsClient, Instance

PROGRESS_EVERY = 60.0
IMDS_TIMEOUT = 5.0  # one whole IMDS request
ARM_TIMEOUT = 20.0  # one whole ARM read, its token included


class Waiter:
    """One wait for Succeeded. ``clock`` and ``sleep`` are monotonic; ``wall`` only places
    a fleet's reads in its duty cycle. ``imds`` and ``arm`` make the clients (tests pass
    their own)."""

    def __init__(self, config: Config, log: Any, notifier: Optional[Notifier] = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: Optional[random.Random] = None,
                 wall: Callable[[], float] = time.time,
                 imds: Callable[[Config], ImdsClient] = clients.imds,
                 arm: Callable[[Config, Instance], ArmClient] = clients.arm,
                 started: Optional[float] = None) -> None:
        self.config = config
        self.log = log
        self.notifier = notifier or Notifier("")
        self.clock = clock
        # The agent's start on ``clock``: AZWAIT_TIMEOUT and the start offset count from it.
        self.started = clock() if started is None else started
        self.policy = WaitPolicy(
            config.interval,
            Graces(imds=config.limit("imds_grace"), identity=config.limit("identity_grace"),
                   rbac=config.limit("rbac_grace"), network=config.limit("network_grace")),
            config.on_failed, rng, wall)
        self.engine = Engine(self.started + config.limit("timeout"), self.policy, clock, sleep,
                             on_failure=self._report_problem, before_pause=self._before_pause)
        self._imds, self._arm = imds, arm
        self.state: Optional[str] = None
        self.attempt = 0
        self._last_problem = ""
        self._last_progress = self.started

    def run(self, state: State) -> str:
        """Return the VM's resource id once Succeeded (``attempt`` 0: another azwait saw
        it while this one waited for the lock). The caller has already looked for a
        marker: a boot that has one never loads this module."""
        config = self.config
        with state.lock(self.engine) as waited:
            marker = state.vouching(config.imds_endpoint, config.arm_endpoint) if waited else None
            if marker:
                self.log.info("another azwait saw Succeeded", marker=str(state.marker_path))
                return str(marker["resourceId"])
            imds = self._imds(config)
            instance = self.engine.run(
                lambda limit: Done(imds.instance(timeout=min(IMDS_TIMEOUT, limit))),
                self._timeout)
            self.log.info("VM found", resource_id=instance.resource_id, vm_id=instance.vm_id,
                          cloud=instance.cloud)
            arm = self._arm(config, instance)
            self.log.debug("ARM endpoint", url=arm.endpoint.url, audience=arm.endpoint.audience)
            # The token first: it is IMDS's to give, not an ARM read, and the first
            # managed-identity token of a boot can take IMDS a while.
            self.engine.run(lambda limit: self._token(arm, limit), self._timeout)
            # The offset spreads a fleet's first ARM reads. It counts from the agent's
            # start: time spent loading, asking IMDS and getting the token is inside it.
            self.engine.bare().pause(self.started + self.policy.start_offset() - self.clock())
            self.engine.run(lambda limit: self._poll(arm, instance, limit), self._timeout)
            state.record(vmId=instance.vm_id, resourceId=instance.resource_id,
                         cloud=instance.cloud, imdsEndpoint=config.imds_endpoint,
                         armEndpoint=arm.endpoint.url)
        return instance.resource_id

    def _token(self, arm: ArmClient, limit: float) -> Step[None]:
        arm.token(limit)
        return Done(None)

    def _poll(self, arm: ArmClient, instance: Instance, limit: float) -> Step[None]:
        self.attempt += 1
        reading = arm.read(instance.resource_id, timeout=min(ARM_TIMEOUT, limit))
        if reading.state != self.state:
            self.log.info("provisioningState", state=reading.state, attempt=self.attempt,
                          waited=self._waited())
            self.state = reading.state
            self._last_progress = self.clock()
        self._last_problem = ""
        delay = self.policy.on_state(reading.state, reading.headers)
        return Done(None) if delay is None else NotYet(delay)

    # -- what a wait says while it waits ---------------------------------------------

    def _before_pause(self, delay: float, pause: float) -> None:
        # The policy's plan, even when the deadline cuts the pause short.
        self.log.debug("next look", attempt=self.attempt, delay=round(delay, 2),
                       stretch=round(self.policy.pacer.stretch, 2))
        what = self.state or "looking up the VM"
        self.notifier.status(f"Waiting for Succeeded: {what}, attempt {self.attempt}, "
                             f"next look in {pause:.0f}s")
        now = self.clock()
        if now - self._last_progress >= PROGRESS_EVERY:
            self._last_progress = now
            self.log.info("still waiting", state=self.state, attempt=self.attempt,
                          waited=self._waited(), interval=f"{pause:.1f}s",
                          stretch=round(self.policy.pacer.stretch, 2))

    def _report_problem(self, failure: Transient) -> None:
        if failure.reason != self._last_problem:  # once per new problem, not per retry
            self._last_problem = failure.reason
            self.log.warning("retrying", problem=failure.reason, kind=failure.kind.value,
                             retry_after=failure.retry_after)

    def _waited(self) -> str:
        return format_duration(round(self.clock() - self.started, 1))

    def _timeout(self) -> TimeoutExpired:
        what = f"still {self.state}" if self.state else "VM state never read"
        if self._last_problem:
            what += f" (last problem: {self._last_problem})"
        limit = self.config.timeout
        return TimeoutExpired(f"{what} after AZWAIT_TIMEOUT={format_duration(limit)}"
                              if math.isfinite(self.config.limit("timeout")) else what)
