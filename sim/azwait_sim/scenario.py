"""The scenario: which fleet the simulator plays and what happens to it, when.

Built once from JSON (plus command-line shorthands), validated in full, then
frozen; everything that changes while the simulator runs lives elsewhere.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from azwait_sim import spec
from azwait_sim.events import EventSpec, parse_events
from azwait_sim.faults import Fault, parse_faults
from azwait_sim.identity import IdentitySpec, parse_identity, seeded
from azwait_sim.throttle import ThrottleConfig, parse_throttle

# Cloud -> the ARM audience its tokens must carry.
CLOUDS = {
    "AzurePublicCloud": "https://management.azure.com/",
    "AzureUSGovernmentCloud": "https://management.usgovcloudapi.net/",
    "AzureChinaCloud": "https://management.chinacloudapi.cn/",
}
# ARM also takes tokens minted for the classic management audience.
LEGACY_AUDIENCES = {
    "AzurePublicCloud": "https://management.core.windows.net/",
    "AzureUSGovernmentCloud": "https://management.core.usgovcloudapi.net/",
    "AzureChinaCloud": "https://management.core.chinacloudapi.cn/",
}
STATES = ("Creating", "Updating", "Succeeded", "Failed", "Deleting", "Canceled", "Migrating")
KINDS = ("uniform", "flex", "vm")
CLOCKS = ("start", "first-request")
IDENTITY_SELECTORS = {
    "client_id": "client_id",
    "object_id": "object_id",
    "msi_res_id": "resource_id",
}

# Python 3.9 evaluates aliases at run time: no "X | Y" here.
Timeline = tuple[tuple[str, float], ...]
ScenarioData = Mapping[str, Any]
_Number = Union[int, float]

_KEYS = (
    "cloud",
    "subscription",
    "tenant",
    "resource_group",
    "location",
    "name",
    "vm_size",
    "kind",
    "vms",
    "scale_sets",
    "states",
    "vm_states",
    "flip_spread",
    "seed",
    "clock",
    "deleted_after",
    "identity",
    "identity_until",
    "rbac",
    "faults",
    "throttle",
    "events",
)


def parse_timeline(value: Any, where: str) -> Timeline:
    entries = spec.array(value, where)
    if not entries:
        raise spec.fail(where, "needs at least one [state, seconds] entry")
    timeline: list[tuple[str, float]] = []
    for n, entry in enumerate(entries):
        here = f"{where}[{n}]"
        pair = spec.array(entry, here)
        if len(pair) != 2:
            raise spec.fail(here, f"expected [state, seconds], got {spec.show(entry)}")
        at = spec.number(pair[1], f"{here}[1]")
        if timeline and at < timeline[-1][1]:
            raise spec.fail(here, f"times must not go backwards ({at:g} after {timeline[-1][1]:g})")
        timeline.append((spec.choice(pair[0], f"{here}[0]", STATES), at))
    return tuple(timeline)


@dataclass(frozen=True)
class Scenario:
    cloud: str = "AzurePublicCloud"
    subscription: str = "8c56d827-5f07-45ce-8f2b-6c5001db5c6f"
    tenant: str = "72f9acbf-86f1-41af-91ab-2d7cd011db47"
    resource_group: str = "rg-azwait-sim"
    location: str = "westeurope"
    name: str = "vmss-azwait"
    vm_size: str = "Standard_D2s_v5"
    kind: str = "uniform"
    vms: int = 1
    scale_sets: int = 1  # VM i belongs to scale set i % scale_sets, each with its own identity
    states: Timeline = (("Creating", 0.0), ("Succeeded", 15.0))
    vm_states: Mapping[int, Timeline] = field(default_factory=dict)
    seed: int | None = None
    clock: str = "start"
    deleted_after: Mapping[int, float] = field(default_factory=dict)
    identity: IdentitySpec = field(default_factory=IdentitySpec)
    identity_until: float = 0.0
    forbidden_until: float = 0.0  # float("inf") = never allowed
    faults: tuple[Fault, ...] = ()
    throttle: ThrottleConfig = field(default_factory=ThrottleConfig)
    events: tuple[EventSpec, ...] = ()

    @property
    def audience(self) -> str:
        return CLOUDS[self.cloud]

    def timeline(self, vm: int) -> Timeline:
        return self.vm_states.get(vm, self.states)

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as err:
            raise ValueError(f"cannot read scenario {path}: {err.strerror or err}") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not JSON: {err}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, value: Any) -> Scenario:
        data = spec.mapping(value, "", _KEYS)
        seed = data.get("seed")
        if seed is not None:
            seed = spec.integer(seed, "seed")
        rng = seeded(seed, "scenario")
        kind = spec.choice(data.get("kind", "uniform"), "kind", KINDS)
        vms = spec.integer(data.get("vms", 1), "vms", minimum=1, maximum=100_000)
        sub = spec.text(
            data.get("subscription", cls.subscription), "subscription", pattern=spec.GUID
        )
        group = spec.text(data.get("resource_group", cls.resource_group), "resource_group")
        default_name = "vm-azwait" if kind == "vm" else cls.name
        states = parse_timeline(data.get("states", [list(s) for s in cls.states]), "states")
        identity_prefix = (
            f"/subscriptions/{sub}/resourceGroups/{group}"
            "/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
        )
        return cls(
            cloud=spec.choice(data.get("cloud", cls.cloud), "cloud", tuple(CLOUDS)),
            subscription=sub,
            tenant=spec.text(data.get("tenant", cls.tenant), "tenant", pattern=spec.GUID),
            resource_group=group,
            location=spec.text(data.get("location", cls.location), "location"),
            name=spec.text(data.get("name", default_name), "name"),
            vm_size=spec.text(data.get("vm_size", cls.vm_size), "vm_size"),
            kind=kind,
            vms=vms,
            scale_sets=_scale_sets(data.get("scale_sets", 1), kind, vms),
            states=states,
            vm_states=_vm_states(data, vms, rng),
            seed=seed,
            clock=spec.choice(data.get("clock", "start"), "clock", CLOCKS),
            deleted_after=_deleted_after(data.get("deleted_after"), vms),
            identity=parse_identity(
                data.get("identity", "system"), "identity", rng, identity_prefix
            ),
            identity_until=spec.number(data.get("identity_until", 0), "identity_until"),
            forbidden_until=_rbac(data.get("rbac")),
            faults=parse_faults(data.get("faults"), "faults", vms),
            throttle=parse_throttle(data.get("throttle"), "throttle", kind),
            events=parse_events(data.get("events"), "events", vms),
        )


def _scale_sets(value: Any, kind: str, vms: int) -> int:
    sets = spec.integer(value, "scale_sets", minimum=1, maximum=vms)
    if sets > 1 and kind == "vm":
        raise spec.fail("scale_sets", "single VMs (kind vm) are in no scale set")
    return sets


def _vm_states(data: ScenarioData, vms: int, rng: random.Random) -> dict[int, Timeline]:
    timelines: dict[int, Timeline] = {}
    spread = data.get("flip_spread")
    if spread is not None:
        pair = spec.array(spread, "flip_spread")
        if len(pair) != 2:
            raise spec.fail("flip_spread", f"expected [earliest, latest], got {spec.show(spread)}")
        low = spec.number(pair[0], "flip_spread[0]")
        high = spec.number(pair[1], "flip_spread[1]", minimum=low)
        for vm in range(vms):
            timelines[vm] = (("Creating", 0.0), ("Succeeded", rng.uniform(low, high)))
    overrides = data.get("vm_states", {})
    if not isinstance(overrides, dict):
        raise spec.fail("vm_states", f"expected an object, got {spec.show(overrides)}")
    for name, value in overrides.items():
        where = f"vm_states.{name}"
        index = spec.vm_index(name, where, vms)
        timelines[index] = parse_timeline(value, where)
    return timelines


def _deleted_after(value: Any, vms: int) -> dict[int, float]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {
            spec.vm_index(name, f"deleted_after.{name}", vms): spec.number(
                at, f"deleted_after.{name}"
            )
            for name, at in value.items()
        }
    at = spec.number(value, "deleted_after")
    return dict.fromkeys(range(vms), at)


def _rbac(value: Any) -> float:
    data = spec.mapping({} if value is None else value, "rbac", ("forbidden", "forbidden_until"))
    if spec.boolean(data.get("forbidden", False), "rbac.forbidden"):
        return float("inf")
    return spec.number(data.get("forbidden_until", 0), "rbac.forbidden_until")


def parse_states_flag(text: str) -> list[list[_Number | str]]:
    """``"Creating@0,Succeeded@15"`` -> ``[["Creating", 0], ["Succeeded", 15]]``."""
    timeline: list[list[_Number | str]] = []
    for item in text.split(","):
        state, sep, at = item.strip().partition("@")
        try:
            seconds = float(at)
        except ValueError:
            seconds = -1.0
        if not sep or not state or seconds < 0:
            raise ValueError(f"--states: expected STATE@SECONDS[,STATE@SECONDS...], got {item!r}")
        timeline.append([state, seconds])
    return timeline


def parse_identity_flags(values: Sequence[str]) -> Any:
    """``--identity`` values -> the scenario's ``identity`` value."""
    if "none" in values:
        if len(values) > 1:
            raise ValueError("--identity: none cannot be combined with other identities")
        return "none"
    system = False
    users: list[dict[str, str]] = []
    for value in values:
        if value == "system":
            system = True
            continue
        user: dict[str, str] = {}
        for part in value.split(","):
            name, sep, wanted = part.partition("=")
            if not sep or name not in IDENTITY_SELECTORS or not wanted:
                raise ValueError(
                    "--identity: expected none, system, client_id=ID, object_id=ID or "
                    f"msi_res_id=RESOURCE_ID, got {value!r}"
                )
            user[IDENTITY_SELECTORS[name]] = wanted
        users.append(user)
    return {"system": system, "user": users}


def apply_flags(data: Any, **flags: Any) -> dict[str, Any]:
    """The scenario dict with command-line shorthands laid over it (None = not given)."""
    merged = dict(spec.mapping(data, "", _KEYS))
    if flags.get("states") is not None:
        merged["states"] = parse_states_flag(flags["states"])
    if flags.get("identities"):
        merged["identity"] = parse_identity_flags(flags["identities"])
    for name in ("cloud", "vms", "clock"):
        if flags.get(name) is not None:
            merged[name] = flags[name]
    return merged
