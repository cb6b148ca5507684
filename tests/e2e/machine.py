"""Real boots: Debian root filesystems with the .deb, booted by systemd-nspawn in
a network namespace where ``azwait-sim`` is Azure at its production addresses.

- IMDS: ``http://169.254.169.254:80`` (an address on the namespace's loopback).
- ARM: ``https://management.azure.com`` — the guest's ``/etc/hosts`` points the
  name at 127.0.0.2 inside the namespace, where the simulator serves TLS with a
  test CA that the guest trusts through ``update-ca-certificates``.

The agent in the guest runs with production defaults: no endpoint overrides.
Root filesystems are cached as tarballs under ``build/e2e``; every test boots a
fresh copy. Every boot has a time bound and is always shut down.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

from azwait_sim.tls import ensure_certificates

TOP = Path(__file__).resolve().parents[2]
WORK = TOP / "build" / "e2e"
MIRROR = os.environ.get("AZWAIT_E2E_MIRROR", "http://deb.debian.org/debian")
PACKAGES = ("systemd,systemd-sysv,dbus,python3,python3-requests,python3-cryptography,"
            "ca-certificates,cloud-init,procps,iproute2")
ARM_ADDRESS = "127.0.0.2"
ARM_NAMES = ("management.azure.com", "management.usgovcloudapi.net", "management.chinacloudapi.cn")
TOKEN_PREFIX = "eyJ0eXAi"  # every token the simulator issues starts so

WORKER = """#!/bin/bash
# e2e worker: record when, and as which PID, it started; stay up; record SIGTERM.
# Times come from bash itself: systemd keeps signalling a stopping unit's cgroup
# until it is empty, so a date(1) forked by the trap would be killed too.
mkdir -p /var/lib/e2e
echo "$EPOCHREALTIME $$ ${WORKER_NAME:-worker}" >> /var/lib/e2e/started
trap 'echo "$EPOCHREALTIME $$ ${WORKER_NAME:-worker}" >> /var/lib/e2e/stopped; exit 0' TERM
sleep infinity &
wait
"""


def run(*argv: str, check: bool = True, timeout: float = 600, **kwargs: Any) -> str:
    done = subprocess.run(argv, check=False, text=True, capture_output=True, timeout=timeout,
                          **kwargs)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def deb_path() -> Path:
    given = os.environ.get("AZWAIT_DEB")
    if given:
        return Path(given)
    debs = sorted((TOP / "build").glob("azwait_*_all.deb"), key=lambda p: p.stat().st_mtime)
    if not debs:
        raise RuntimeError("no build/azwait_*_all.deb: run make deb first")
    return debs[-1]


def certificates() -> Any:
    return ensure_certificates(WORK / "certs")


def base_tarball(suite: str) -> Path:
    """mmdebstrap of ``suite`` with systemd, Python and cloud-init (cached)."""
    path = WORK / f"{suite}-{_key(suite, PACKAGES, MIRROR)}.tar"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.tar")  # mmdebstrap picks the format by suffix
        run("mmdebstrap", "--variant=minbase", f"--include={PACKAGES}", suite, str(partial),
            MIRROR, timeout=1200)
        partial.rename(path)
    return path


def installed_tarball(suite: str) -> Path:
    """The base root with the .deb installed (no network), the test CA trusted,
    ARM names in /etc/hosts and a persistent journal (cached per .deb)."""
    deb = deb_path()
    ca = certificates().ca.read_bytes()
    base = base_tarball(suite)
    digest = hashlib.sha256(deb.read_bytes() + ca + WORKER.encode()).hexdigest()[:12]
    path = WORK / f"{suite}-{base.stem.split('-')[-1]}-{digest}.installed.tar"
    if path.exists():
        return path
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        run("tar", "-C", str(root), "-xf", str(base))
        shutil.copy(deb, root / "var/tmp/azwait.deb")
        # No network for the install (--private-network: loopback only); the
        # .deb's dependencies are in the root already.
        run("systemd-nspawn", "-q", "-D", str(root), "--private-network", "--register=no",
            "--keep-unit", "--setenv=DEBIAN_FRONTEND=noninteractive",
            "apt-get", "install", "-y", "-q", "-o", "Dpkg::Use-Pty=0", "/var/tmp/azwait.deb")
        (root / "var/tmp/azwait.deb").unlink()
        (root / "usr/local/share/ca-certificates/azwait-sim-ca.crt").write_bytes(ca)
        run("chroot", str(root), "update-ca-certificates", env={"PATH": "/usr/sbin:/usr/bin"})
        hosts = f"127.0.0.1 localhost\n::1 localhost\n{ARM_ADDRESS} {' '.join(ARM_NAMES)}\n"
        (root / "etc/hosts").write_text(hosts)
        (root / "etc/hostname").write_text("azwait-e2e\n")
        (root / "var/log/journal").mkdir(parents=True, exist_ok=True)
        worker = root / "usr/local/bin/worker"
        worker.write_text(WORKER)
        worker.chmod(0o755)
        # cloud-init stays off unless a test gives it a seed (the cloud-init tests do).
        (root / "etc/cloud/cloud-init.disabled").touch()
        partial = path.with_suffix(".partial")
        run("tar", "-C", str(root), "-cf", str(partial), ".")
        partial.rename(path)
    return path


def fresh_root(suite: str, name: str) -> Path:
    root = WORK / "roots" / name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    run("tar", "-C", str(root), "-xf", str(installed_tarball(suite)))
    return root


def enable(root: Path, *units: str) -> None:
    run("systemctl", f"--root={root}", "enable", *units)


def install_unit(root: Path, source: Path, worker_name: str) -> str:
    """Copy a unit into the guest, with WORKER_NAME set for the worker it runs."""
    target = root / "etc/systemd/system" / source.name
    shutil.copy(source, target)
    dropin = target.with_name(source.name + ".d")
    dropin.mkdir(exist_ok=True)
    (dropin / "e2e.conf").write_text(f"[Service]\nEnvironment=WORKER_NAME={worker_name}\n")
    return source.name


class Azure:
    """A network namespace with the simulator at Azure's production addresses."""

    def __init__(self, name: str, scenario: dict[str, Any]) -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=WORK))
        self.log = self.dir / "requests.jsonl"
        self.scenario = scenario
        self.proc: Optional[subprocess.Popen[str]] = None

    def __enter__(self) -> Azure:
        run("ip", "netns", "add", self.name)
        run("ip", "-n", self.name, "link", "set", "lo", "up")
        run("ip", "-n", self.name, "addr", "add", "169.254.169.254/32", "dev", "lo")
        self.serve(self.scenario)
        return self

    def serve(self, scenario: dict[str, Any]) -> None:
        """(Re)start the simulator with ``scenario``; its clock starts at the first request."""
        self.stop_sim()
        scenario_file = self.dir / "scenario.json"
        scenario_file.write_text(json.dumps(scenario))
        ready = self.dir / "ready.json"
        ready.unlink(missing_ok=True)
        self.log.unlink(missing_ok=True)
        with open(self.dir / "sim.err", "w") as errors:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.name, sys.executable, "-m", "azwait_sim",
             "--imds-host", "169.254.169.254", "--imds-port", "80",
                 "--arm-host", ARM_ADDRESS, "--arm-port", "443",
                 "--cert-dir", str(WORK / "certs"), "--scenario", str(scenario_file),
                 "--clock", "first-request", "--log", str(self.log), "--ready-file", str(ready)],
                stdout=subprocess.DEVNULL, stderr=errors, text=True)
        limit = time.monotonic() + 20
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > limit:
                raise RuntimeError("simulator did not start: " + (self.dir / "sim.err").read_text())
            time.sleep(0.05)

    def requests(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def wall_of(self, at: float) -> Optional[float]:
        """Wall-clock time of scenario second ``at`` (None before the first request)."""
        first = next(iter(self.requests()), None)
        return None if first is None else float(first["wall"] - first["t"] + at)

    def stop_sim(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *_: object) -> None:
        self.stop_sim()
        run("ip", "netns", "del", self.name, check=False)


class Machine:
    """One boot of ``root`` with systemd as PID 1, inside the Azure namespace."""

    def __init__(self, root: Path, azure: Azure, name: str, bound: float) -> None:
        self.root = root
        self.azure = azure
        self.name = name
        self.deadline = time.monotonic() + bound
        self.console = azure.dir / f"{name}.console"
        self.proc: Optional[subprocess.Popen[str]] = None
        self.leader = 0

    def __enter__(self) -> Machine:
        # Worker records are per boot: a reboot must not see the last boot's.
        (self.root / "var/lib/e2e/started").unlink(missing_ok=True)
        self._console = self.console.open("w")  # closed in __exit__
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", str(self.root), "--boot", "--register=no", "--keep-unit",
             f"--network-namespace-path=/run/netns/{self.azure.name}", f"--machine={self.name}",
             "--console=read-only"],
            stdin=subprocess.DEVNULL, stdout=self._console, stderr=subprocess.STDOUT,
            text=True, start_new_session=True)
        self.leader = self._find_leader()
        self.wait_for(lambda: self.sh("systemctl is-active dbus.service", check=False).strip()
                      == "active", "dbus in the guest", 60)
        return self

    def _find_leader(self) -> int:
        """The guest's PID 1, as a host PID (a descendant of nspawn whose NSpid ends in 1)."""
        assert self.proc is not None
        limit = time.monotonic() + 30
        while time.monotonic() < limit:
            if self.proc.poll() is not None:
                raise RuntimeError("nspawn exited: " + self.console.read_text()[-2000:])
            for pid in _descendants(self.proc.pid):
                with contextlib.suppress(OSError):
                    status = Path(f"/proc/{pid}/status").read_text()
                    nspid = next(line for line in status.splitlines() if line.startswith("NSpid"))
                    fields = nspid.split()
                    if len(fields) > 2 and fields[-1] == "1":
                        return pid
            time.sleep(0.1)
        raise RuntimeError("no container init found")

    def sh(self, command: str, check: bool = True, timeout: float = 60) -> str:
        """Run a shell command inside the guest (all its namespaces, its root)."""
        return run("nsenter", "-t", str(self.leader), "-a", "-r", "-w", "/bin/sh", "-c", command,
                   check=check, timeout=timeout,
                   env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_PAGER": "",
                        "SYSTEMD_COLORS": "0", "LANG": "C.UTF-8"})

    def wait_for(self, predicate: Any, what: str, seconds: float) -> None:
        limit = min(self.deadline, time.monotonic() + seconds)
        while True:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                if predicate():
                    return
            if time.monotonic() > limit:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.25)

    # -- what the guest knows ------------------------------------------------------

    def prop(self, unit: str, name: str) -> str:
        return self.sh(f"systemctl show -P {name} {unit}").strip()

    def timestamp(self, unit: str, name: str, interface: str = "Unit") -> Optional[float]:
        """A unit's timestamp property, in seconds since the epoch, exact to the µs."""
        path = "/org/freedesktop/systemd1/unit/" + "".join(
            c if c.isalnum() else f"_{ord(c):02x}" for c in unit)
        out = self.sh(f"busctl get-property org.freedesktop.systemd1 {path} "
                      f"org.freedesktop.systemd1.{interface} {name}").split()
        value = int(out[1])
        return value / 1e6 if value else None

    def workers(self, record: str = "started") -> list[tuple[float, int, str]]:
        """(time, pid, name) of each worker start; record="stopped": each SIGTERM."""
        out = self.sh(f"cat /var/lib/e2e/{record} 2>/dev/null || true")
        rows = []
        for line in out.splitlines():
            at, pid, name = line.split()
            rows.append((float(at), int(pid), name))
        return rows

    def journal(self, *args: str) -> list[dict[str, Any]]:
        out = self.sh("journalctl -b --no-pager -o json " + " ".join(args), check=False)
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def __exit__(self, *_: object) -> None:
        assert self.proc is not None
        with contextlib.suppress(Exception):
            self.sh("systemctl poweroff --no-block", check=False, timeout=10)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._console.close()


def _descendants(pid: int) -> Iterator[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(OSError):
        for child in children.read_text().split():
            yield int(child)
            yield from _descendants(int(child))


def seed(root: Path, user_data: str, instance_id: str = "iid-azwait-e2e") -> None:
    """Turn cloud-init on with a NoCloud seed. A minimal root has no ssh-keygen,
    locales or network renderer, which cloud-init 25 would report as recoverable
    errors; the namespace's network is the harness's, not cloud-init's."""
    (root / "etc/cloud/cloud-init.disabled").unlink(missing_ok=True)
    nocloud = root / "var/lib/cloud/seed/nocloud"
    nocloud.mkdir(parents=True, exist_ok=True)
    (nocloud / "user-data").write_text(user_data)
    (nocloud / "meta-data").write_text(f"instance-id: {instance_id}\n"
                                       "local-hostname: azwait-e2e\n")
    (root / "etc/cloud/cloud.cfg.d/05_e2e.cfg").write_text(
        "datasource_list: [NoCloud, None]\nssh_genkeytypes: []\nlocale: false\n"
        "network: {config: disabled}\n")
