"""``azwait status``: one look at the VM, no waiting."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional, TextIO

from .config import Config
from .errors import AzwaitError, TimeoutExpired
from .imds import ImdsClient
from .policy import Graces, WaitPolicy
from .state import State, mismatch
from .transient import Kind, Transient

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
    """What azwait can tell right now, and the error that ended the look, if any."""
    from .arm import ArmClient
    from .clouds import endpoint_for
    from .identity import Identity, isolate_environment

    report: dict[str, Any] = {"marker": marker_report(config)}
    policy = WaitPolicy(config.interval, Graces.none())
    try:
        instance = ImdsClient(config.imds_endpoint).instance(timeout=LOOK_TIMEOUT)
        report.update(resource=instance.resource_id, vm_id=instance.vm_id, cloud=instance.cloud)
        isolate_environment(config.imds_endpoint)
        endpoint = endpoint_for(instance.cloud, config.arm_endpoint)
        identity = Identity(config.identity, timeout=LOOK_TIMEOUT)
        report.update(arm=endpoint.url, identity=identity.kind)
        reading = ArmClient(endpoint, instance.subscription_id, identity).read(
            instance.resource_id, timeout=LOOK_TIMEOUT)
        report["state"] = reading.state
        if policy.on_state(reading.state, reading.headers, 0.0) is not None:
            return report, TimeoutExpired(f"VM is {reading.state}, not Succeeded yet")
    except Transient as failure:
        if failure.kind is Kind.RETRY:
            return report, TimeoutExpired(f"state unknown for now: {failure.reason}")
        return report, policy.fatal(failure)
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
        # The reader (``| head``) has what it wanted: not a failure of the look.
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    return error.exit_code if error else 0
