"""``--detach``: hand "wait, then exec COMMAND" to a transient systemd service.

For callers that must not wait: the Custom Script Extension (the VM cannot reach
Succeeded while the extension runs), cloud-init's final stage. The service runs
in system.slice — not in the caller's cgroup (the extension's CPU/memory limits)
— under one stable name, so a second hand-off finds the first instead of
starting a second worker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Callable

from .errors import NotDetachable, no_restart_statuses

UNIT = "azwait-detached.service"
# Passed on to the service: azwait's own keys, what ARM traffic may need, and the
# PATH that COMMAND was checked against before the hand-off.
_PASS_ON = ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "PATH")
_BUSY = ("active", "activating", "reloading", "deactivating")
_SYSTEMCTL_TIMEOUT = 10.0


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/bin:/bin")
    if path is None:
        raise NotDetachable(f"--detach needs {name}, which is not installed")
    return path


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True,
                              timeout=_SYSTEMCTL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise NotDetachable(f"{os.path.basename(argv[0])} did not answer within "
                            f"{_SYSTEMCTL_TIMEOUT:g}s: systemd is busy or stuck") from None
    except OSError as err:
        raise NotDetachable(f"cannot run {argv[0]}: {err.strerror}") from None


def unit_state() -> str:
    done = _run([_tool("systemctl"), "show", "--property=ActiveState", "--value", UNIT])
    return done.stdout.strip() or "inactive"


def service_args(inner: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """systemd-run's arguments that start ``inner`` as the transient service."""
    setenv = [f"--setenv={name}={value}" for name, value in sorted(environ.items())
              if name.startswith("AZWAIT_") or name in _PASS_ON]
    return [
        f"--unit={UNIT}", "--collect", "--no-block",
        "--description=azwait: wait for Azure provisioning, then start the worker",
        "--service-type=exec", "--slice=system.slice",
        "--property=Wants=network-online.target", "--property=After=network-online.target",
        # The same restart policy as azwait.service: transient failures only.
        "--property=Restart=on-failure", "--property=RestartSec=10s",
        "--property=RestartPreventExitStatus=" + " ".join(map(str, no_restart_statuses())),
        *setenv, "--", *inner,
    ]


def hand_off(inner: Sequence[str], environ: Mapping[str, str], say: Callable[[str], None]) -> int:
    """Start ``inner`` (an azwait command line) as the transient service; return at once.

    Reports with ``say`` (a plain line), not the structured log: under the Custom
    Script Extension this runs in a slice with CPUQuota=5%, where every import
    costs twenty times its CPU time in wall time.
    """
    if not os.path.isdir("/run/systemd/system"):
        raise NotDetachable("--detach needs systemd as PID 1 to hand the wait to; "
                            "run azwait -- COMMAND under your own supervisor instead")
    done = _run([_tool("systemd-run"), *service_args(inner, environ)])
    if done.returncode != 0:
        # systemd-run refuses a unit name that is loaded: an earlier hand-off is
        # still waiting (or its worker running). That is the outcome asked for.
        state = unit_state()
        if state in _BUSY:
            say(f"already handed off: {UNIT} is {state}; no second worker started")
            return 0
        reason = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise NotDetachable(f"systemd-run refused the hand-off: {reason}")
    say(f"handed off to {UNIT}: it waits for Succeeded, then starts the worker "
        f"(journalctl -u {UNIT})")
    return 0
