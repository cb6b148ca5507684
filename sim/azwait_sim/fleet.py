"""The simulated VMs: names and ids as Azure forms them, each VM's clock, and the
provisioning state its timeline gives at a moment of that clock."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from azwait_sim.identity import Principal, new_guid, new_principal, seeded
from azwait_sim.scenario import STATES, Scenario


@dataclass
class VM:
    index: int
    name: str
    computer_name: str
    resource_id: str
    vm_id: str
    timeline: list[tuple[str, float]]
    deleted_at: float | None
    system: Principal | None
    scale_set_id: str = ""
    zero: float | None = None  # monotonic time of this VM's clock zero

    def state_at(self, t: float) -> str:
        state = self.timeline[0][0]
        for name, at in self.timeline:
            if at > t:
                break
            state = name
        return state

    def deleted(self, t: float) -> bool:
        return self.deleted_at is not None and t >= self.deleted_at


def _base36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        n, rest = divmod(n, 36)
        out = digits[rest] + out
        if not n:
            return out.rjust(6, "0")


class Fleet:
    """All VMs of the scenario, found by index or by resource id."""

    def __init__(self, scenario: Scenario, monotonic: Callable[[], float]) -> None:
        self.scenario = scenario
        self._monotonic = monotonic
        self._lock = threading.Lock()
        rng = seeded(scenario.seed, "fleet")
        group = f"/subscriptions/{scenario.subscription}/resourceGroups/{scenario.resource_group}"
        sets = scenario.scale_sets
        self.scale_set_names = [scenario.name] if sets == 1 else [
            f"{scenario.name}-{n}" for n in range(sets)]
        self.scale_set_ids = [f"{group}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}"
                              for name in self.scale_set_names]
        # A scale set's system identity is one principal shared by all its instances.
        shared = [new_principal("system", rng) for _ in range(sets)] \
            if scenario.kind != "vm" else None
        self.vms: list[VM] = []
        used: set[str] = set()
        for index in range(scenario.vms):
            name, computer, resource_id = self._naming(index, index % sets, group, rng, used)
            system = None
            if scenario.identity.system:
                system = shared[index % sets] if shared else new_principal("system", rng)
            self.vms.append(
                VM(
                    index=index,
                    name=name,
                    computer_name=computer,
                    resource_id=resource_id,
                    vm_id=new_guid(rng),
                    timeline=list(scenario.timeline(index)),
                    deleted_at=scenario.deleted_after.get(index),
                    system=system,
                    scale_set_id=self.scale_set_ids[index % sets],
                )
            )
        self._by_id = {vm.resource_id.lower(): vm for vm in self.vms}

    def _naming(
        self, index: int, scale_set: int, group: str, rng: random.Random, used: set[str]
    ) -> tuple[str, str, str]:
        sc = self.scenario
        set_name = self.scale_set_names[scale_set]
        if sc.kind == "uniform":
            return (
                f"{set_name}_{index}",
                f"{set_name[:9]}{_base36(index)}",
                f"{self.scale_set_ids[scale_set]}/virtualMachines/{index}",
            )
        if sc.kind == "flex":
            name = f"{set_name}_{rng.getrandbits(32):08x}"
            while name in used:
                name = f"{set_name}_{rng.getrandbits(32):08x}"
            used.add(name)
            computer = f"{set_name[:9]}{name[-6:].upper()}"
        else:
            name = computer = sc.name if sc.vms == 1 else f"{sc.name}-{index}"
        return name, computer, f"{group}/providers/Microsoft.Compute/virtualMachines/{name}"

    def __len__(self) -> int:
        return len(self.vms)

    def __iter__(self) -> Iterator[VM]:
        return iter(self.vms)

    def get(self, index: int) -> VM | None:
        return self.vms[index] if 0 <= index < len(self.vms) else None

    def find(self, resource_id: str) -> VM | None:
        # ARM resource ids are case-insensitive.
        return self._by_id.get(resource_id.rstrip("/").lower())

    def start_clocks(self) -> None:
        if self.scenario.clock == "start":
            now = self._monotonic()
            with self._lock:
                for vm in self.vms:
                    vm.zero = now

    def touch(self, vm: VM) -> None:
        """An IMDS request from ``vm``: starts its clock under clock=first-request."""
        with self._lock:
            if vm.zero is None:
                vm.zero = self._monotonic()

    def now(self, vm: VM) -> float:
        with self._lock:
            return 0.0 if vm.zero is None else max(0.0, self._monotonic() - vm.zero)

    def state(self, vm: VM) -> str:
        t = self.now(vm)
        with self._lock:
            return vm.state_at(t)

    def set_state(self, vm: VM, state: str) -> None:
        if state not in STATES:
            raise ValueError(f"unknown provisioning state {state!r} (one of {', '.join(STATES)})")
        t = self.now(vm)
        with self._lock:
            vm.timeline = [(name, at) for name, at in vm.timeline if at <= t] + [(state, t)]
