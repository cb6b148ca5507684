"""systemd paths, proven by booting Debian 12 and 13 with systemd as PID 1.

Needs root, mmdebstrap, systemd-nspawn and a built .deb (``make e2e`` does all of it).
"""

from __future__ import annotations

import os
import re

import pytest

from .machine import TOKEN_PREFIX, TOP, Azure, Machine, enable, fresh_root, install_unit

EXAMPLES = TOP / "systemd" / "examples"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="real boots need root")


def active(machine: Machine, unit: str) -> bool:
    return machine.sh(f"systemctl is-active {unit}", check=False).strip() == "active"


def no_token_in_journal(machine: Machine) -> None:
    journal = machine.sh("journalctl -b --no-pager -o cat", check=False)
    assert "azwait" in journal and TOKEN_PREFIX not in journal


def test_target_path_then_reboot(suite: str, netns: str) -> None:
    """Target path: boot is not held, the worker starts after the flip; a reboot
    with the VM already Succeeded starts it within 5 s of azwait.service."""
    root = fresh_root(suite, f"{suite}-target")
    install_unit(root, EXAMPLES / "hpc-worker.service", "target")
    enable(root, "azure-provisioned.target", "hpc-worker.service")
    with Azure(netns, {"states": [["Creating", 0], ["Succeeded", 15]]}) as azure:
        with Machine(root, azure, f"{suite}-target-1", bound=120) as vm:
            vm.wait_for(lambda: "Waiting for Succeeded: Creating" in vm.sh(
                "systemctl status azwait.service --no-pager", check=False),
                "azwait's STATUS= in systemctl status", 30)
            vm.wait_for(lambda: vm.workers(), "the worker", 60)
            flip = azure.wall_of(15)
            assert flip is not None
            multi_user = vm.timestamp("multi-user.target", "ActiveEnterTimestamp")
            ready = vm.timestamp("azure-provisioned.target", "ActiveEnterTimestamp")
            (started, pid, name), = vm.workers()
            assert multi_user is not None and multi_user < flip, "boot waited for Azure"
            assert ready is not None and started >= ready >= flip
            assert name == "target" and pid == int(vm.prop("hpc-worker.service", "MainPID"))
            assert vm.journal("-u", "azwait.service", "-p", "err") == []
            no_token_in_journal(vm)
            exposure = vm.sh("systemd-analyze security azwait.service --no-pager", check=False)
            level = float(re.findall(r"Overall exposure level for azwait.service: ([\d.]+)",
                                     exposure)[0])
            print(f"\n{suite}: systemd-analyze security azwait.service: exposure {level}")
            assert level <= 3.0
            verify = vm.sh("systemd-analyze verify --man=no azwait.service "
                           "azure-provisioned.target hpc-worker.service 2>&1", check=False)
            assert verify.strip() == "", verify

        azure.serve({"states": [["Succeeded", 0]]})
        with Machine(root, azure, f"{suite}-target-2", bound=90) as vm:
            vm.wait_for(lambda: vm.workers(), "the worker after reboot", 60)
            (started, _, _), = vm.workers()
            azwait_started = vm.timestamp("azwait.service", "ExecMainStartTimestamp", "Service")
            assert azwait_started is not None and started - azwait_started <= 5.0
            print(f"{suite}: reboot, worker {started - azwait_started:.2f} s after azwait.service")
            no_token_in_journal(vm)


def test_exec_and_pre_paths_survive_a_long_wait(suite: str, netns: str) -> None:
    """Type=exec and ExecStartPre= workers start after a flip at 100 s (past the
    90 s default start timeout), as the main PID systemd tracks."""
    root = fresh_root(suite, f"{suite}-exec")
    exec_unit = install_unit(root, EXAMPLES / "hpc-worker-exec.service", "exec")
    pre_unit = install_unit(root, EXAMPLES / "hpc-worker-pre.service", "pre")
    enable(root, exec_unit, pre_unit)
    with Azure(netns, {"states": [["Creating", 0], ["Succeeded", 100]]}) as azure, \
            Machine(root, azure, f"{suite}-exec", bound=200) as vm:
        vm.wait_for(lambda: active(vm, "multi-user.target"), "multi-user.target", 60)
        vm.wait_for(lambda: len(vm.workers()) == 2, "both workers", 150)
        flip = azure.wall_of(100)
        assert flip is not None
        started = {name: (at, pid) for at, pid, name in vm.workers()}
        for unit, name in ((exec_unit, "exec"), (pre_unit, "pre")):
            at, pid = started[name]
            assert at >= flip
            assert pid == int(vm.prop(unit, "MainPID"))
            assert active(vm, unit) and vm.prop(unit, "NRestarts") == "0"
        multi_user = vm.timestamp("multi-user.target", "ActiveEnterTimestamp")
        assert multi_user is not None and multi_user < flip, "boot waited for Azure"
        verify = vm.sh(f"systemd-analyze verify --man=no {exec_unit} {pre_unit} 2>&1", check=False)
        assert verify.strip() == "", verify
        no_token_in_journal(vm)


def test_failed_vm_never_starts_the_worker(suite: str, netns: str) -> None:
    """Failed: azwait.service fails with exit 4, is not restarted, logs one error
    at priority err; the gated worker never starts."""
    root = fresh_root(suite, f"{suite}-failed")
    install_unit(root, EXAMPLES / "hpc-worker.service", "target")
    enable(root, "azure-provisioned.target", "hpc-worker.service")
    with Azure(netns, {"states": [["Creating", 0], ["Failed", 5]]}) as azure, \
            Machine(root, azure, f"{suite}-failed", bound=90) as vm:
        vm.wait_for(lambda: vm.prop("azwait.service", "ActiveState") == "failed",
                    "azwait.service to fail", 45)
        failed_at = vm.timestamp("azwait.service", "InactiveEnterTimestamp")
        assert failed_at is not None
        # Past RestartSec=10s: a restart would have happened by now.
        vm.wait_for(lambda: _monotonic_past(vm, failed_at + 12), "12 s after the failure", 30)
        assert vm.prop("azwait.service", "ExecMainStatus") == "4"
        assert vm.prop("azwait.service", "NRestarts") == "0"
        assert vm.prop("azwait.service", "ActiveState") == "failed"
        assert vm.workers() == []
        assert vm.prop("hpc-worker.service", "ActiveState") != "active"
        errors = vm.journal("-u", "azwait.service", "-p", "err")
        ours = [e for e in errors if e.get("SYSLOG_IDENTIFIER") == "azwait"]
        assert len(ours) == 1 and ours[0]["PRIORITY"] == "3"
        assert "Failed" in ours[0]["MESSAGE"]
        # Everything else azwait said was below err: priorities come through.
        info = [e for e in vm.journal("-u", "azwait.service")
                if e.get("SYSLOG_IDENTIFIER") == "azwait" and e["PRIORITY"] == "6"]
        assert any("provisioningState" in e["MESSAGE"] for e in info)
        assert all(int(e["PRIORITY"]) <= 3 for e in vm.journal("-p", "err"))
        no_token_in_journal(vm)


def _monotonic_past(vm: Machine, wall: float) -> bool:
    return float(vm.sh("date +%s.%N")) >= wall
