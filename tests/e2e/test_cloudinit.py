"""cloud-init paths (module and per-boot script), proven by real boots with a NoCloud seed."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from .machine import TOKEN_PREFIX, TOP, Azure, Machine, deb_path, fresh_root, run, seed

EXAMPLES = TOP / "cloud-init" / "examples"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="real boots need root")

MODULE_SECTION = """#cloud-config
write_files:
  - path: /etc/cloud/cloud.cfg.d/99-azwait.cfg
    content: |
      azwait:
        worker: /usr/local/bin/worker
        interval: {interval}
"""


def finished_done(vm: Machine) -> str:
    """Wait for cloud-init to finish; it must say done, exit 0, with nothing from azwait
    among its warnings or deprecations."""
    status = vm.sh("cloud-init status --wait --long; echo exit=$?", check=False, timeout=120)
    assert "status: done" in status and "exit=0" in status, status
    assert "azwait" not in status.lower(), status
    return status


def test_module_path(suite: str, netns: str) -> None:
    """cc_azwait from a write_files drop-in: cloud-final finishes before the flip,
    the worker starts after it, cloud-init reports done."""
    root = fresh_root(suite, f"{suite}-ci-module")
    seed(root, MODULE_SECTION.format(interval="2s"))
    with Azure(netns, {"states": [["Creating", 0], ["Succeeded", 15]]}) as azure, \
            Machine(root, azure, f"{suite}-ci-module", bound=150) as vm:
        vm.wait_for(lambda: vm.workers(), "the worker", 90)
        flip = azure.wall_of(15)
        final = vm.timestamp("cloud-final.service", "ActiveEnterTimestamp")
        assert flip is not None and final is not None and final < flip
        (started, pid, _), = vm.workers()
        assert started >= flip
        assert pid == int(vm.prop("azwait-detached.service", "MainPID"))
        finished_done(vm)
        written = vm.sh("cat /etc/default/azwait")
        assert "AZWAIT_WORKER=/usr/local/bin/worker" in written
        assert TOKEN_PREFIX not in vm.sh("journalctl -b -o cat --no-pager; "
                                         "cat /var/log/cloud-init*.log", check=False)


def test_per_boot_script_every_boot(suite: str, netns: str) -> None:
    """The per-boot script (bootcmd copy): same guarantees, and again on a reboot."""
    root = fresh_root(suite, f"{suite}-ci-perboot")
    seed(root, (EXAMPLES / "per-boot.yaml").read_text()
         .replace("'/usr/local/bin/worker --queue jobs'", "/usr/local/bin/worker"))
    with Azure(netns, {"states": [["Creating", 0], ["Succeeded", 15]]}) as azure:
        with Machine(root, azure, f"{suite}-ci-perboot-1", bound=150) as vm:
            vm.wait_for(lambda: vm.workers(), "the worker", 90)
            flip = azure.wall_of(15)
            final = vm.timestamp("cloud-final.service", "ActiveEnterTimestamp")
            assert flip is not None and final is not None and final < flip
            assert vm.workers()[0][0] >= flip
            finished_done(vm)
        azure.serve({"states": [["Succeeded", 0]]})
        with Machine(root, azure, f"{suite}-ci-perboot-2", bound=120) as vm:
            vm.wait_for(lambda: vm.workers(), "the worker after a reboot", 90)
            finished_done(vm)
            boots = vm.sh("journalctl --list-boots --no-pager | tail -n +2 | wc -l")
            assert int(boots) == 2


def test_deleting_vm_starts_no_worker(suite: str, netns: str) -> None:
    """A VM going to Deleting: no worker, the hand-off records exit 4, cloud-init done."""
    root = fresh_root(suite, f"{suite}-ci-deleting")
    seed(root, MODULE_SECTION.format(interval="1s"))
    with Azure(netns, {"states": [["Creating", 0], ["Deleting", 5]]}) as azure, \
            Machine(root, azure, f"{suite}-ci-deleting", bound=120) as vm:
        finished_done(vm)
        vm.wait_for(lambda: "status=4" in vm.sh(
            "journalctl -b -u azwait-detached.service --no-pager", check=False),
            "azwait-detached.service to exit 4", 60)
        assert vm.workers() == []


def test_bad_section_warns_and_keeps_config(suite: str, netns: str) -> None:
    """A bad azwait: section: one warning naming the key in cloud-init.log, the previous
    /etc/default/azwait untouched, no worker."""
    root = fresh_root(suite, f"{suite}-ci-bad")
    before = (root / "etc/default/azwait").read_bytes()
    seed(root, MODULE_SECTION.format(interval="5x"))
    with Azure(netns, {"states": [["Succeeded", 0]]}) as azure, \
            Machine(root, azure, f"{suite}-ci-bad", bound=120) as vm:
        vm.sh("cloud-init status --wait", check=False, timeout=120)
        log = vm.sh("cat /var/log/cloud-init.log")
        warnings = [line for line in log.splitlines()
                    if "WARNING" in line and "AZWAIT_INTERVAL" in line]
        assert len(warnings) == 1, log[-3000:]
        assert vm.sh("cat /etc/default/azwait").encode() == before
        vm.wait_for(lambda: vm.prop("azwait-detached.service", "LoadState") == "not-found",
                    "no hand-off", 5)
        assert vm.workers() == []
        assert azure.requests() == []


def test_ubuntu_variant_keeps_every_final_module(netns: str) -> None:
    """Debian 13 whose /etc/cloud/cloud.cfg is cloud-init 25.1's ubuntu-variant rendering,
    with the .deb installed after it: the final stage still considers ubuntu_drivers and
    ansible (which skip on Debian: no config for them) and runs azwait, and cloud-init
    ends done."""
    rendered = TOP / "build/cloud-init/trixie/rendered/ubuntu.cfg"
    assert rendered.exists(), "run tests/cloudinit/fixtures.sh (make e2e does)"
    root = fresh_root("trixie", "trixie-ci-ubuntu")
    shutil.copy(rendered, root / "etc/cloud/cloud.cfg")
    shutil.copy(deb_path(), root / "var/tmp/azwait.deb")
    run("systemd-nspawn", "-q", "-D", str(root), "--private-network", "--register=no",
        "--keep-unit", "--setenv=DEBIAN_FRONTEND=noninteractive",
        "dpkg", "-i", "/var/tmp/azwait.deb")
    seed(root, MODULE_SECTION.format(interval="2s"))
    # The variant's default user (groups lxd, netdev) and Ubuntu apt mirrors do not fit
    # a Debian root: leave both alone, as the final stage is what is under test.
    (root / "etc/cloud/cloud.cfg.d/06_e2e_ubuntu.cfg").write_text(
        "users: []\napt: {preserve_sources_list: true}\n")
    with Azure(netns, {"states": [["Creating", 0], ["Succeeded", 10]]}) as azure, \
            Machine(root, azure, "trixie-ci-ubuntu", bound=150) as vm:
        vm.wait_for(lambda: vm.workers(), "the worker", 90)
        finished_done(vm)
        log = vm.sh("cat /var/log/cloud-init.log")
    final = log[log.index("running 'modules:final'"):]
    skipped = [name for line in final.splitlines()
               for name in re.findall(r"Skipping modules '([^']*)' because", line)
               for name in name.split(",")]
    assert {"ubuntu_drivers", "ansible"} <= set(skipped), final[:3000]
    assert "Running module azwait (" in final
