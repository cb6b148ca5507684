"""Scheduled Events on a real boot: the worker is drained before Azure is told to go.

Needs root, mmdebstrap, systemd-nspawn and a built .deb (``make e2e`` does all of it).
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from .machine import TOKEN_PREFIX, TOP, Azure, Machine, enable, fresh_root, install_unit

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="real boots need root")


def test_terminate_stops_the_worker_before_the_approval(suite: str, netns: str) -> None:
    """A gated worker runs; a Terminate for this VM arrives; azwait-events runs
    `systemctl stop` on it; the worker gets SIGTERM and exits; then, and only then,
    the approval reaches the simulator."""
    root = fresh_root(suite, f"{suite}-events")
    install_unit(root, TOP / "systemd/examples/hpc-worker.service", "target")
    with (root / "etc/default/azwait").open("a") as defaults:
        defaults.write("AZWAIT_DRAIN_COMMAND=systemctl stop hpc-worker.service\n")
    enable(root, "azure-provisioned.target", "hpc-worker.service", "azwait-events.service")
    scenario = {"states": [["Creating", 0], ["Succeeded", 5]],
                "events": [{"at": 20, "type": "Terminate", "not_before": 300}]}
    with Azure(netns, scenario) as azure, \
            Machine(root, azure, f"{suite}-events", bound=120) as vm:
        vm.wait_for(lambda: vm.workers(), "the worker", 60)
        # Started after the target too; READY=1 once it knows the VM's name.
        vm.wait_for(lambda: vm.prop("azwait-events.service", "ActiveState") == "active",
                    "azwait-events.service", 30)
        vm.wait_for(lambda: approvals(azure), "the approval", 60)
        (approval,) = approvals(azure)
        appeared = azure.wall_of(20)
        ((started, pid, _),) = vm.workers()
        ((stopped, stopped_pid, _),) = vm.workers("stopped")
        assert appeared is not None and started < appeared
        assert stopped_pid == pid
        assert appeared <= stopped <= appeared + 3.0  # polled about once a second
        assert stopped < approval["wall"] and approval["status"] == 200
        assert vm.prop("hpc-worker.service", "ActiveState") == "inactive"
        events = [e["event_id"] for e in azure.requests() if e["endpoint"] == "events-approve"]
        assert events == [approval["event_id"]]
        status = vm.sh("systemctl status azwait-events.service --no-pager", check=False)
        assert "last event: Terminate" in status and "approved" in status
        assert vm.journal("-u", "azwait-events.service", "-p", "err") == []
        journal = vm.sh("journalctl -b --no-pager -o cat", check=False)
        assert "event approved" in journal and TOKEN_PREFIX not in journal
        exposure = vm.sh("systemd-analyze security azwait-events.service --no-pager",
                         check=False)
        level = float(re.findall(r"Overall exposure level for azwait-events.service: "
                                 r"([\d.]+)", exposure)[0])
        assert level <= 5.0
        print(f"\n{suite}: worker stopped {stopped - appeared:.2f} s after the event, "
              f"approved {approval['wall'] - stopped:.2f} s after it stopped; "
              f"azwait-events.service exposure {level}")
        verify = vm.sh("systemd-analyze verify --man=no azwait-events.service 2>&1",
                       check=False)
        assert verify.strip() == "", verify


def approvals(azure: Azure) -> list[dict[str, Any]]:
    return [r for r in azure.requests() if r["endpoint"] == "events-approve"]
