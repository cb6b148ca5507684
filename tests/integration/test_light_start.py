"""What a start loads: the real azwait under ``python -X importtime``.

Start-up time and memory are the benchmark's (make bench-agent); which modules a
path loads is a property of the code, checked here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from azwait.state import boot_id

from .conftest import AZWAIT, Harness

# Never needed for a marker: the HTTP stack (and the sockets and mail headers it
# reads), the Azure SDK, structlog, stdlib logging (only the SDKs log through it),
# the wait's machinery.
NOT_FOR_A_MARKER = ("requests", "urllib3", "azure", "msal", "jwt", "cryptography", "structlog",
                    "logging", "email", "socket", "azwait.waiter", "azwait.policy",
                    "azwait.imds", "azwait.clients")
# Never needed for a token from IMDS and one ARM read (and the journal, logfmt and
# json formats need no structlog).
NOT_FOR_A_READ = ("azure.identity", "msal", "msal_extensions", "jwt", "cryptography",
                  "structlog")


def loaded(stderr: str) -> set[str]:
    """Module names from ``-X importtime`` lines (``import time: self | cumulative | name``)."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}


def under(modules: set[str], names: tuple[str, ...]) -> set[str]:
    return {m for m in modules if any(m == n or m.startswith(n + ".") for n in names)}


def run_importtime(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-X", "importtime", AZWAIT, "--config", "/dev/null",
                           *args], env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def test_the_marker_path_loads_no_sdk(tmp_path: Path) -> None:
    """A marker for this boot: no network, and nothing of the HTTP stack or the SDK loaded."""
    imds, arm = "http://127.0.0.1:9", "https://127.0.0.1:9"  # nothing listens: no network
    state = tmp_path / "state"
    state.mkdir()
    (state / "succeeded.json").write_text(json.dumps({
        "vmId": "v", "resourceId": "/subscriptions/s/x/virtualMachines/0",
        "cloud": "AzurePublicCloud", "imdsEndpoint": imds, "armEndpoint": arm,
        "bootId": boot_id()}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZWAIT_")}
    env.update(AZWAIT_IMDS_ENDPOINT=imds, AZWAIT_ARM_ENDPOINT=arm,
               AZWAIT_STATE_DIR=str(state), AZWAIT_LOG_FORMAT="json")
    done = run_importtime(env, "--", "true")
    assert done.returncode == 0, done.stderr
    assert '"event": "already Succeeded on this boot"' in done.stderr
    modules = loaded(done.stderr)
    assert {"azwait.cli", "azwait.logs", "azwait.state"} <= modules  # the parse works
    assert under(modules, NOT_FOR_A_MARKER) == set()


def test_the_ready_path_loads_no_azure_identity(make_sim: Any) -> None:
    """IMDS, a token and one ARM read: the SDK pieces that read, not azure-identity's
    whole package (MSAL, PyJWT, cryptography), nor structlog."""
    h: Harness = make_sim({"states": [["Succeeded", 0]]})
    done = run_importtime(h.env(), "--", "true")
    assert done.returncode == 0, done.stderr
    assert len(h.arm_reads()) == 1
    modules = loaded(done.stderr)
    assert {"requests", "azure.core", "azure.mgmt.resource"} <= modules  # the parse works
    assert under(modules, NOT_FOR_A_READ) == set()
