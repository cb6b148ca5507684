"""``azwait status``: one look at the VM, no waiting."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional, TextIO

from .config import Config
from .errors import AzwaitError, TimeoutExpired
from .imds import ImdsClient
from .policy import Graces, WaitPolicy
from .state import State, boot_id
from .transient import Transient

LOOK_TIMEOUT = 5.0


def _marker(state: State) -> str:
    marker = state.marker()
    if marker is None:
        return "none"
    if marker.get("bootId") == boot_id():
        return f"Succeeded on this boot ({state.marker_path})"
    return f"stale, from another boot ({state.marker_path})"


def look(config: Config) -> tuple[dict[str, Any], Optional[AzwaitError]]:
    """What azwait can tell right now, and the error that ended the look, if any."""
    from .arm import ArmClient, endpoint_for
    from .identity import Identity, isolate_environment

    report: dict[str, Any] = {"marker": _marker(State(config.state_dir))}
    # Grace windows of zero: the first failure of each kind is final for one look.
    policy = WaitPolicy(config.interval, Graces(imds=0, identity=0, rbac=0, not_found=0))
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
        if failure.kind == "retry":
            return report, TimeoutExpired(f"state unknown for now: {failure.reason}")
        try:
            policy.on_failure(failure, 0.0)
        except AzwaitError as err:
            return report, err
        raise AssertionError("a zero grace always ends the look") from None
    except AzwaitError as err:
        return report, err
    return report, None


def show(config: Config, as_json: bool, out: TextIO = sys.stdout) -> int:
    report, error = look(config)
    if error is not None:
        report["error"] = error.message
    if as_json:
        out.write(json.dumps(report, indent=2) + "\n")
    else:
        width = max(len(name) for name in report) + 1
        for name, value in report.items():
            out.write(f"{name + ':':<{width}} {value}\n")
    return error.exit_code if error else 0
