"""Scheduled Events: a scripted list of platform events, shown to each VM from
the time its clock reaches them, until some VM approves them."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from azwait_sim import spec
from azwait_sim.identity import new_guid

# Type -> (usual notice in seconds, description IMDS gives).
EVENT_TYPES = {
    "Preempt": (30.0, "Virtual machine is being preempted."),
    "Terminate": (300.0, "Virtual machine is being deleted."),
    "Reboot": (900.0, "Virtual machine is going to be restarted as requested by authorized user."),
    "Redeploy": (600.0, "Virtual machine is being redeployed to a new host."),
    "Freeze": (900.0, "Host server is undergoing maintenance."),
}
_KEYS = ("at", "type", "resources", "not_before", "duration", "source", "description", "vms")


@dataclass(frozen=True)
class EventSpec:
    at: float
    type: str
    resources: tuple[str, ...] = ("self",)
    not_before: float = 30.0
    duration: int = -1
    source: str = "Platform"
    description: str = ""
    vms: tuple[int, ...] | None = None

    @property
    def per_vm(self) -> bool:
        """A "self" event is a separate event on every VM; others are shared."""
        return "self" in self.resources


def _event(value: Any, where: str, vms: int) -> EventSpec:
    data = spec.mapping(value, where, _KEYS)
    if "type" not in data:
        raise spec.fail(spec.key(where, "type"), f"required, one of {', '.join(EVENT_TYPES)}")
    kind = spec.choice(data["type"], spec.key(where, "type"), tuple(EVENT_TYPES))
    notice, description = EVENT_TYPES[kind]
    where_res = spec.key(where, "resources")
    resources = tuple(
        spec.text(name, f"{where_res}[{n}]")
        for n, name in enumerate(spec.array(data.get("resources", ["self"]), where_res))
    )
    if not resources:
        raise spec.fail(where_res, 'needs at least one name (or "self")')
    return EventSpec(
        at=spec.number(data.get("at", 0), spec.key(where, "at")),
        type=kind,
        resources=resources,
        not_before=spec.number(data.get("not_before", notice), spec.key(where, "not_before")),
        duration=spec.integer(data.get("duration", -1), spec.key(where, "duration"), minimum=-1),
        source=spec.choice(
            data.get("source", "Platform"), spec.key(where, "source"), ("Platform", "User")
        ),
        description=spec.text(data.get("description", description), spec.key(where, "description")),
        vms=spec.vm_list(data.get("vms"), spec.key(where, "vms"), vms),
    )


def parse_events(value: Any, where: str, vms: int) -> tuple[EventSpec, ...]:
    items = spec.array([] if value is None else value, where)
    return tuple(_event(item, f"{where}[{n}]", vms) for n, item in enumerate(items))


class EventBoard:
    """The event document per VM; approvals are shared by all VMs."""

    def __init__(self, specs: Sequence[EventSpec], names: Sequence[str], rng: random.Random):
        self._specs = tuple(specs)
        self._names = tuple(names)
        self._rng = rng
        self._lock = threading.Lock()
        self._ids: dict[tuple[int, int], str] = {}
        self._approved: set[str] = set()

    def _id(self, n: int, vm: int) -> str:
        slot = (n, vm if self._specs[n].per_vm else -1)
        if slot not in self._ids:
            self._ids[slot] = new_guid(self._rng)
        return self._ids[slot]

    def _visible(self, vm: int, t: float) -> Iterable[tuple[int, EventSpec, str]]:
        for n, event in enumerate(self._specs):
            if event.at <= t and (event.vms is None or vm in event.vms):
                yield n, event, self._id(n, vm)

    def document(self, vm: int, t: float, wall: float) -> dict[str, Any]:
        with self._lock:
            events = []
            incarnation = 0
            for _, event, event_id in self._visible(vm, t):
                # Each appearance and each approval changes the document once.
                incarnation += 1
                if event_id in self._approved:
                    incarnation += 1
                    continue
                appeared = wall - (t - event.at)
                events.append(
                    {
                        "EventId": event_id,
                        "EventType": event.type,
                        "ResourceType": "VirtualMachine",
                        "Resources": [
                            self._names[vm] if r == "self" else r for r in event.resources
                        ],
                        "EventStatus": "Scheduled",
                        "NotBefore": formatdate(appeared + event.not_before, usegmt=True),
                        "Description": event.description,
                        "EventSource": event.source,
                        "DurationInSeconds": event.duration,
                    }
                )
            return {"DocumentIncarnation": incarnation, "Events": events}

    def approve(self, vm: int, t: float, event_ids: Sequence[str]) -> list[str]:
        """Approve what this VM can see; returns the ids it could not (nothing done then)."""
        with self._lock:
            open_ids = {i for _, _, i in self._visible(vm, t) if i not in self._approved}
            unknown = [i for i in event_ids if i not in open_ids]
            if not unknown:
                self._approved.update(event_ids)
            return unknown
