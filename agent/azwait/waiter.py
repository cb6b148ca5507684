"""The wait: IMDS → identity → ARM until Succeeded, timed by the wait policy."""

from __future__ import annotations

import math
import random
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from .config import Config, format_duration
from .errors import TimeoutExpired
from .notify import Notifier
from .policy import Graces, WaitPolicy
from .state import State
from .transient import Transient

if TYPE_CHECKING:
    import tenacity

    from .arm import ArmClient
    from .imds import Instance

T = TypeVar("T")
PROGRESS_EVERY = 60.0
IMDS_TIMEOUT = 5.0  # one whole IMDS request
ARM_TIMEOUT = 20.0  # one whole ARM read, its token included


class _Again(Exception):
    """One attempt is over and the policy wants another after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.delay = delay


class Waiter:
    def __init__(self, config: Config, log: Any, notifier: Optional[Notifier] = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: Optional[random.Random] = None) -> None:
        self.config = config
        self.log = log
        self.notifier = notifier or Notifier("")
        self.clock = clock
        self.sleep = sleep
        self.started = clock()
        self.deadline = self.started + config.limit("timeout")
        self.policy = WaitPolicy(
            config.interval,
            Graces(imds=config.limit("imds_grace"), identity=config.limit("identity_grace"),
                   rbac=config.limit("rbac_grace"), network=config.limit("network_grace")),
            config.on_failed, rng)
        self.state: Optional[str] = None
        self.attempt = 0
        self._last_problem = ""
        self._last_progress = self.started

    def run(self, state: State) -> str:
        """Return the VM's resource id once Succeeded (``attempt`` 0: the marker said so)."""
        config = self.config
        marker = state.vouching(config.imds_endpoint, config.arm_endpoint)
        if marker:
            self.log.info("already Succeeded on this boot", marker=str(state.marker_path))
            return str(marker["resourceId"])
        with state.lock(self.deadline, self.clock, self.sleep) as waited:
            marker = state.vouching(config.imds_endpoint, config.arm_endpoint) if waited else None
            if marker:
                self.log.info("another azwait saw Succeeded", marker=str(state.marker_path))
                return str(marker["resourceId"])
            instance = self._keep_trying(self._look_up_instance)
            self.log.info("VM found", resource_id=instance.resource_id, vm_id=instance.vm_id,
                          cloud=instance.cloud)
            arm = self._arm_client(instance)
            self.sleep(min(self.policy.start_offset(), self._remaining()))
            self._keep_trying(lambda remaining: self._poll(arm, instance, remaining))
            state.record(vmId=instance.vm_id, resourceId=instance.resource_id,
                         cloud=instance.cloud, imdsEndpoint=config.imds_endpoint,
                         armEndpoint=arm.endpoint.url)
        return instance.resource_id

    # -- attempts ---------------------------------------------------------------

    def _look_up_instance(self, remaining: float) -> Instance:
        from .imds import ImdsClient  # requests loads only when a wait is needed

        return ImdsClient(self.config.imds_endpoint).instance(
            timeout=min(IMDS_TIMEOUT, remaining))

    def _arm_client(self, instance: Instance) -> ArmClient:
        # The Azure SDKs load only here: the marker fast path never pays for them.
        from .arm import ArmClient
        from .clouds import endpoint_for
        from .identity import Identity, isolate_environment

        isolate_environment(self.config.imds_endpoint)
        endpoint = endpoint_for(instance.cloud, self.config.arm_endpoint)
        self.log.debug("ARM endpoint", url=endpoint.url, audience=endpoint.audience)
        return ArmClient(endpoint, instance.subscription_id, Identity(self.config.identity))

    def _poll(self, arm: ArmClient, instance: Instance, remaining: float) -> None:
        self.attempt += 1
        reading = arm.read(instance.resource_id, timeout=min(ARM_TIMEOUT, remaining))
        if reading.state != self.state:
            self.log.info("provisioningState", state=reading.state, attempt=self.attempt,
                          waited=self._waited())
            self.state = reading.state
            self._last_progress = self.clock()
        self._last_problem = ""
        delay = self.policy.on_state(reading.state, reading.headers, self.clock())
        if delay is not None:
            raise _Again(delay)

    # -- timing -----------------------------------------------------------------

    def _keep_trying(self, attempt: Callable[[float], T]) -> T:
        import tenacity

        def once() -> T:
            remaining = self._remaining()
            if remaining <= 0:
                raise self._timeout()
            began = self.clock()
            try:
                return attempt(min(remaining, self.policy.attempt_limit(began)))
            except Transient as failure:
                delay = self.policy.on_failure(failure, self.clock(), began)
                self._report_problem(failure)
                raise _Again(delay) from None

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Again),
            wait=self._wait_for,
            stop=tenacity.stop_never,
            sleep=self.sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        return retrying(once)

    def _wait_for(self, retry_state: tenacity.RetryCallState) -> float:
        again = retry_state.outcome.exception() if retry_state.outcome else None
        delay = again.delay if isinstance(again, _Again) else 0.0
        self.log.debug("next look", attempt=self.attempt, delay=round(delay, 2),
                       stretch=round(self.policy.pacer.stretch, 2))
        # Never past the deadline: the next attempt then reports the timeout.
        return max(0.0, min(delay, self._remaining()))

    def _before_sleep(self, retry_state: tenacity.RetryCallState) -> None:
        delay = retry_state.next_action.sleep if retry_state.next_action else 0.0
        what = self.state or "looking up the VM"
        self.notifier.status(f"Waiting for Succeeded: {what}, attempt {self.attempt}, "
                             f"next look in {delay:.0f}s")
        now = self.clock()
        if now - self._last_progress >= PROGRESS_EVERY:
            self._last_progress = now
            self.log.info("still waiting", state=self.state, attempt=self.attempt,
                          waited=self._waited(), interval=f"{delay:.1f}s",
                          stretch=round(self.policy.pacer.stretch, 2))

    def _report_problem(self, failure: Transient) -> None:
        if failure.reason != self._last_problem:  # once per new problem, not per retry
            self._last_problem = failure.reason
            self.log.warning("retrying", problem=failure.reason, kind=failure.kind.value,
                             retry_after=failure.retry_after)

    def _remaining(self) -> float:
        return self.deadline - self.clock()

    def _waited(self) -> str:
        return format_duration(round(self.clock() - self.started, 1))

    def _timeout(self) -> TimeoutExpired:
        what = f"still {self.state}" if self.state else "VM state never read"
        if self._last_problem:
            what += f" (last problem: {self._last_problem})"
        limit = self.config.timeout
        return TimeoutExpired(f"{what} after AZWAIT_TIMEOUT={format_duration(limit)}"
                              if math.isfinite(limit) else what)
