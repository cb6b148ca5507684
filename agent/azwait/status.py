"""``azwait status``: one look at the VM, no waiting."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Optional, TextIO

from . import clients, logs
from .config import Config
from .engine import Done, Engine
from .errors import AzwaitError, TimeoutExpired
from .policy import Graces, WaitPolicy
from .state import State, mismatch

LOOK_TIMEOUT = 5.0


def marker_report(config: Config) -> Optional[dict[str, Any]]:
    """The marker as data: whether it vouches for this configuration, why not, what it says."""
    state = State(config.state_dir)
    content = state.marker()
    if content is None:
        return None
    why_not = mismatch(content, config.imds_endpoint, config.arm_endpoint)
    return {"path": str(state.marker_path), "vouches": why_not is None, "why_not": why_not,
            "content": content}


def look(config: Config) -> tuple[dict[str, Any], Optional[AzwaitError]]:
    """What azwait can tell right now, and the error that ended the look, if any.

    One look: a failure with a grace window ends it at once with that window's
    error; throttling and the like are tried again for at most ``LOOK_TIMEOUT``.
    """
    report: dict[str, Any] = {"marker": marker_report(config)}
    policy = WaitPolicy(config.interval, Graces.none())
    problem: list[str] = []
    engine = Engine(time.monotonic() + LOOK_TIMEOUT, policy,
                    on_failure=lambda failure: problem.append(failure.reason))

    def expired() -> TimeoutExpired:
        return TimeoutExpired("state unknown for now" + (f": {problem[-1]}" if problem else ""))

    try:
        # As the waiter does it, in steps: each request is given what is left of the
        # look, and none outlives it.
        imds = clients.imds(config)
        instance = engine.run(lambda limit: Done(imds.instance(timeout=limit)), expired)
        report.update(resource=instance.resource_id, vm_id=instance.vm_id, cloud=instance.cloud)
        arm = clients.arm(config, instance)
        report.update(arm=arm.endpoint.url, identity=arm.identity.kind)
        report["state"] = state = engine.run(
            lambda limit: Done(arm.read(instance.resource_id, timeout=limit).state), expired)
        if policy.on_state(state, {}) is not None:
            return report, TimeoutExpired(f"VM is {state}, not Succeeded yet")
    except AzwaitError as err:
        return report, err
    return report, None


def _plain(name: str, value: Any) -> str:
    if name != "marker":
        return str(value)
    if value is None:
        return "none"
    if value["vouches"]:
        return f"Succeeded on this boot ({value['path']})"
    return f"does not vouch for this run: {value['why_not']} ({value['path']})"


def show(config: Config, as_json: bool, out: TextIO = sys.stdout) -> int:
    report, error = look(config)
    if error is not None:
        report["error"] = error.message
    if as_json:
        text = json.dumps(report, indent=2) + "\n"
    else:
        width = max(len(name) for name in report) + 1
        text = "".join(f"{name + ':':<{width}} {_plain(name, value)}\n"
                       for name, value in report.items())
    try:
        out.write(text)
        out.flush()
    except BrokenPipeError:
        logs.silence(out)  # the reader has what it wanted: not a failure of the look
    return error.exit_code if error else 0
