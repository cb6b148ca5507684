"""How an ARM error answer is classified: retried, a grace window, or the end."""

from __future__ import annotations

from typing import Optional

import pytest
from azure.core.exceptions import HttpResponseError

from azwait.arm import _classify
from azwait.errors import ArmRejected
from azwait.transient import Kind, Transient

VM = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v"


def answered(status: Optional[int]) -> HttpResponseError:
    err = HttpResponseError(message=f"status {status}")
    err.status_code = status
    return err


@pytest.mark.parametrize(("status", "kind"), [
    (401, Kind.RBAC), (403, Kind.RBAC), (404, Kind.NOT_FOUND),
    (408, Kind.RETRY), (429, Kind.RETRY), (500, Kind.RETRY), (503, Kind.RETRY),
    (None, Kind.RETRY),  # no status at all: no verdict on the request
    (302, Kind.RETRY),  # a redirect the pipeline did not follow: no verdict either
])
def test_answers_waiting_can_change_are_retried(status: Optional[int], kind: Kind) -> None:
    outcome = _classify(answered(status), VM)
    assert isinstance(outcome, Transient) and outcome.kind is kind


@pytest.mark.parametrize("status", [400, 405, 409, 422])
def test_another_4xx_is_the_end_of_the_wait(status: int) -> None:
    outcome = _classify(answered(status), VM)
    assert isinstance(outcome, ArmRejected) and outcome.exit_code == 9
    assert outcome.message == f"ARM rejected the read of {VM}: {status}"
