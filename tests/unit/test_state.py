"""The marker vouches only for what it saw; state that cannot be written never blocks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from azwait.engine import Engine
from azwait.state import State, boot_id, mismatch

IMDS = "http://169.254.169.254"
SEEN = {"vmId": "v", "resourceId": "/subscriptions/s/x/virtualMachines/0",
        "cloud": "AzurePublicCloud", "imdsEndpoint": IMDS,
        "armEndpoint": "https://management.azure.com"}


@pytest.mark.parametrize("change,imds,arm,why_not", [
    ({}, IMDS, None, None),
    ({}, IMDS, "https://management.azure.com", None),
    ({"bootId": "another"}, IMDS, None, "from another boot"),
    ({"resourceId": ""}, IMDS, None, "names no resource"),
    ({}, "http://127.0.0.1:8080", None, "seen through IMDS http://169.254.169.254"),
    ({}, IMDS, "https://127.0.0.1:8443", "seen through ARM https://management.azure.com"),
    ({"armEndpoint": "https://127.0.0.1:8443"}, IMDS, None, "not https://management.azure.com"),
    ({"cloud": "AzureChinaCloud"}, IMDS, None, "not https://management.chinacloudapi.cn"),
    ({"imdsEndpoint": None}, IMDS, None, "seen through IMDS None"),  # a 0.2.0 marker
])
def test_a_marker_vouches_only_for_what_it_saw(change: dict[str, Any], imds: str,
                                               arm: str | None, why_not: str | None) -> None:
    marker = {**SEEN, "bootId": boot_id(), **change}
    found = mismatch(marker, imds, arm)
    assert (found is None) if why_not is None else (found is not None and why_not in found)


def test_record_then_vouch(tmp_path: Path) -> None:
    state = State(str(tmp_path / "state"))
    assert state.vouching(IMDS, None) is None
    state.record(**SEEN)
    marker = state.vouching(IMDS, None)
    assert marker is not None and marker["resourceId"] == SEEN["resourceId"]
    assert state.vouching("http://127.0.0.1:9", None) is None


def test_an_unusable_directory_warns_and_waits_on(tmp_path: Path) -> None:
    """A state path that cannot be a directory: no lock, no marker, one warning each time
    something is given up, and never an exception."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    warnings: list[str] = []
    state = State(str(blocker / "state"), warn=warnings.append)
    with state.lock(Engine(time.monotonic() + 5)) as waited:
        assert waited is False
    state.record(**SEEN)
    assert len(warnings) == 1 and "cannot take the wait lock" in warnings[0]
    assert state.marker() is None


def test_a_failed_marker_write_is_a_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    state = State(str(tmp_path / "state"), warn=warnings.append)
    with state.lock(Engine(time.monotonic() + 5)):
        (tmp_path / "state" / "succeeded.tmp").mkdir()  # the temporary cannot be written
        state.record(**SEEN)
    assert len(warnings) == 1 and "cannot write the Succeeded marker" in warnings[0]
