"""The Custom Script Extension path (azwait --detach), proven by real boots.

A stand-in for the Azure Linux agent runs the extension command the way the agent
does: a child of a unit in its own slice, with CPUQuota=5%. (Where the container
gets no cpu controller — a cgroup v1 host — the quota is set but not enforced, so
the test also reports the command's CPU time and the wall time it implies at 5%.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .machine import Azure, Machine, fresh_root

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="real boots need root")
COMMAND = "/usr/bin/azwait --detach -- /usr/local/bin/worker"
DETACHED = "azwait-detached.service"


STAND_IN = """#!/bin/sh
# Stand-in for the Azure agent's extension handler: run "$@", record the outcome.
s=$(date +%s.%N)
python3 - "$@" >/var/tmp/cse.out 2>/var/tmp/cse.err <<'PY'
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print("cpu=%.3f" % (usage.ru_utime + usage.ru_stime))
sys.exit(code)
PY
echo "rc=$? start=$s end=$(date +%s.%N)" >/var/tmp/cse.result
"""


def root_with_stand_in(suite: str, name: str) -> Path:
    root = fresh_root(suite, name)
    script = root / "usr/local/bin/run-extension"
    script.write_text(STAND_IN)
    script.chmod(0o755)
    return root


def extension(vm: Machine, command: str) -> dict[str, str]:
    """Run ``command`` as the agent runs an extension; its exit code, output, times, CPU."""
    vm.sh("systemd-run --quiet --wait --collect --slice=azure-vmextensions.slice "
          f"--property=CPUQuota=5% /usr/local/bin/run-extension {command}")
    fields = dict(item.split("=", 1) for item in vm.sh("cat /var/tmp/cse.result").split())
    out = vm.sh("cat /var/tmp/cse.out").strip().splitlines()
    fields["cpu"] = out[-1].split("=", 1)[1]
    fields["stdout"] = "\n".join(out[:-1])
    fields["stderr"] = vm.sh("cat /var/tmp/cse.err")
    return fields


def ready(vm: Machine) -> None:
    vm.wait_for(lambda: vm.sh("systemctl is-active multi-user.target", check=False).strip()
                == "active", "multi-user.target", 60)


def test_returns_at_once_and_worker_runs_outside_the_extension_slice(suite: str,
                                                                    netns: str) -> None:
    """The command returns within 2 s while the VM is Creating; twice starts one
    worker; after the flip the worker runs in system.slice, not the extension's."""
    root = root_with_stand_in(suite, f"{suite}-cse")
    with Azure(netns, {"states": [["Creating", 0], ["Succeeded", 15]]}) as azure, \
            Machine(root, azure, f"{suite}-cse", bound=120) as vm:
        ready(vm)
        first = extension(vm, COMMAND)
        second = extension(vm, COMMAND)
        for run in (first, second):
            assert run["rc"] == "0", run
            assert float(run["end"]) - float(run["start"]) <= 2.0
        print(f"\n{suite}: --detach used {first['cpu']} s CPU: "
              f"{float(first['cpu']) / 0.05:.1f} s of wall time at CPUQuota=5%")
        assert "handed off" in first["stdout"] and "already handed off" in second["stdout"]
        vm.wait_for(lambda: vm.workers(), "the worker", 60)
        flip = azure.wall_of(15)
        assert flip is not None and float(second["end"]) < flip  # returned while Creating
        (started, pid, _), = vm.workers()
        assert started >= flip
        cgroups = vm.sh(f"cat /proc/{pid}/cgroup")
        assert f"/system.slice/{DETACHED}" in cgroups and "azure-vmextensions" not in cgroups
        assert pid == int(vm.prop(DETACHED, "MainPID"))
        vm.sh("sleep 2")
        assert len(vm.workers()) == 1


def test_deleting_vm_never_starts_the_worker(suite: str, netns: str) -> None:
    """Deleting 10 s in (an overprovisioned VM): no worker; the unit records exit 4."""
    root = root_with_stand_in(suite, f"{suite}-cse-deleting")
    with Azure(netns, {"states": [["Creating", 0], ["Deleting", 10]]}) as azure, \
            Machine(root, azure, f"{suite}-cse-deleting", bound=90) as vm:
        ready(vm)
        assert extension(vm, COMMAND)["rc"] == "0"
        vm.wait_for(lambda: "status=4/" in vm.sh(f"journalctl -b -u {DETACHED} --no-pager",
                                                 check=False), "exit 4 in the journal", 60)
        assert vm.workers() == []
        assert "Deleting" in vm.sh(f"journalctl -b -u {DETACHED} -p err -o cat --no-pager")


@pytest.mark.parametrize("command", [
    "/usr/bin/azwait --detach --timeout soon -- /usr/local/bin/worker",
    "/usr/bin/azwait --detach --",
    "/usr/bin/azwait --detach --bogus -- /usr/local/bin/worker",
])
def test_bad_arguments_fail_before_anything_starts(suite: str, netns: str,
                                                   command: str) -> None:
    """Bad arguments: exit 2 with one clear line; no unit, no request to Azure."""
    root = root_with_stand_in(suite, f"{suite}-cse-bad")
    with Azure(netns, {"states": [["Succeeded", 0]]}) as azure, \
            Machine(root, azure, f"{suite}-cse-bad", bound=60) as vm:
        ready(vm)
        run = extension(vm, command)
        assert run["rc"] == "2"
        lines = run["stderr"].strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("azwait: ")
        assert vm.prop(DETACHED, "LoadState") == "not-found"
        assert azure.requests() == []
