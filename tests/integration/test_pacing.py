"""Fleet pacing as a real agent meets it: budget counters from the simulator's buckets,
drained by other VMs of the same scale set (this test, holding the same identity)."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import requests

from azwait.pacer import JOIN

from .conftest import Harness, json_lines

# Every shared bucket at a fiftieth: the per-principal one holds 5 reads, refilled at
# one every 2 s, so the test can drain it with a handful. VM 0 runs the agent; VMs 1-3
# are the rest of its scale set.
SMALL = {"vms": 4, "throttle": {"scale": 0.02}}


def drain(h: Harness, reads: int, every: float = 0.0) -> list[int]:
    """Read the VM as the scale set's other instances would: same identity, same bucket."""
    imds = {"Metadata": "true"}
    token = requests.get(
        f"{h.sim.imds_url}/metadata/identity/oauth2/token",
        params={"api-version": "2018-02-01", "resource": "https://management.azure.com/"},
        headers=imds, timeout=5).json()["access_token"]
    others = [requests.get(
        f"{h.sim.imds_url}/vm/{vm}/metadata/instance/compute/resourceId",
        params={"api-version": "2021-02-01", "format": "text"}, headers=imds, timeout=5).text
        for vm in (1, 2, 3)]  # each VM has its own 36-read burst: spread over three
    with requests.Session() as arm:
        arm.headers["Authorization"] = f"Bearer {token}"
        statuses = []
        for n in range(reads):
            statuses.append(arm.get(f"{h.sim.arm_url}{others[n % 3]}",
                                    params={"api-version": "2024-07-01"},
                                    verify=str(h.sim.ca_path), timeout=5).status_code)
            threading.Event().wait(every)
        return statuses


@dataclasses.dataclass(frozen=True)
class Look:
    """One planned look, from the agent's debug line: its delay and the stretch behind it."""

    delay: float
    stretch: float


def planned_looks(stderr: str) -> list[Look]:
    return [Look(e["delay"], e["stretch"]) for e in json_lines(stderr)
            if e.get("event") == "next look"]


def look_once(h: Harness) -> list[Look]:
    # Creating until the timeout: the agent plans its next look and is cut at the deadline.
    result = h.run(AZWAIT_INTERVAL="1s", AZWAIT_TIMEOUT="3s", AZWAIT_LOG_LEVEL="debug")
    assert result.code == 3, result.stderr
    return planned_looks(result.stderr)


def test_a_lone_vm_keeps_the_base_interval(make_sim: Any) -> None:
    """Full buckets say nothing of a fleet: the next look is one jittered interval away."""
    h = make_sim({"states": [["Creating", 0]], **SMALL})
    looks = look_once(h)
    assert looks and looks[0].stretch == 1.0 and looks[0].delay <= 1.15


def test_a_vm_booting_into_a_drained_bucket_slows_from_its_first_read(make_sim: Any) -> None:
    """The first answer already shows the shared bucket drained by the rest of the fleet:
    the agent joins it at that answer, before any second look or any 429.

    Joining sets the stretch to JOIN intervals; the first wait itself is drawn from 1 to
    JOIN intervals so that newcomers spread, so only its floor is certain."""
    h = make_sim({"states": [["Creating", 0]], **SMALL})
    assert set(drain(h, 4)) == {200}
    looks = look_once(h)
    assert [r["status"] for r in h.arm_reads()][-1] == 200  # the agent's read went through
    assert looks and looks[0].stretch == JOIN
    assert looks[0].delay >= 1.0


def test_a_refused_read_is_paced_by_its_own_counters(make_sim: Any) -> None:
    """A 429 carries the counters too: the agent joins the fleet on it and waits at least
    the Retry-After it was given."""
    h = make_sim({"states": [["Creating", 0]], **SMALL})
    # The rest of the fleet empties the bucket, then keeps reading at eight times the
    # refill for the whole run.
    drain(h, 6)
    fleet = threading.Thread(target=drain, args=(h, 20, 0.25))
    fleet.start()
    result = h.run(AZWAIT_INTERVAL="1s", AZWAIT_TIMEOUT="3s", AZWAIT_LOG_LEVEL="debug")
    fleet.join()
    reads = h.arm_reads()
    agent = next(r for r in reads if r["vm"] == 0)
    assert agent["status"] == 429 and agent["budget"]
    assert "x-ms-ratelimit-remaining-subscription-reads" in agent["budget"]
    looks = planned_looks(result.stderr)
    assert result.code == 3 and looks
    assert looks[0].stretch == JOIN and looks[0].delay >= agent["retry_after"]
