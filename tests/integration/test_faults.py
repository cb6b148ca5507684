"""Transient faults are retried under one policy; persistent ones end with their code."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from .conftest import Harness


def ok_after(h: Harness, endpoint: str) -> list[int]:
    return [r["status"] for r in h.sim.requests() if r["endpoint"] == endpoint]


def test_imds_410_then_ok(make_sim: Any) -> None:
    """IMDS 410 during boot is retried until IMDS answers."""
    h = make_sim({"states": [["Succeeded", 0]],
                  "faults": [{"endpoint": "instance", "status": 410, "end": 1.5}]})
    result = h.run("--", *h.worker())
    assert result.code == 0 and h.worker_ran() is not None
    statuses = ok_after(h, "instance")
    assert statuses[0] == 410 and statuses[-1] == 200


def test_imds_unreachable_exits_5(make_sim: Any, tmp_path: Any) -> None:
    """No IMDS at all for the whole grace: not an Azure VM, exit 5."""
    h = make_sim()
    with socket.socket() as closed:  # a port that refuses connections
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = h.run("--", *h.worker(), AZWAIT_IMDS_ENDPOINT=f"http://127.0.0.1:{port}",
                   AZWAIT_IMDS_GRACE="2s")
    assert result.code == 5 and h.worker_ran() is None
    assert "IMDS" in result.stderr and "Traceback" not in result.stderr


def test_token_500_then_ok(make_sim: Any) -> None:
    """Token endpoint 5xx is retried."""
    h = make_sim({"states": [["Succeeded", 0]],
                  "faults": [{"endpoint": "token", "status": 500, "count": 1}]})
    result = h.run("--", *h.worker())
    assert result.code == 0, result.stderr
    assert ok_after(h, "token") == [500, 200]


def test_no_identity_exits_6_with_hint(make_sim: Any) -> None:
    """No managed identity: retried for the identity grace, then exit 6 saying what to do."""
    h = make_sim({"identity": "none"})
    result = h.run("--", *h.worker(), AZWAIT_IDENTITY_GRACE="1s")
    assert result.code == 6 and h.worker_ran() is None
    assert "Reader" in result.stderr and "identity" in result.stderr
    assert len(ok_after(h, "token")) >= 2  # retried before giving up


def test_identity_appearing_within_grace(make_sim: Any) -> None:
    """A freshly assigned identity that propagates within the grace is waited for."""
    h = make_sim({"states": [["Succeeded", 0]], "identity_until": 1.5})
    result = h.run("--", *h.worker())
    assert result.code == 0 and ok_after(h, "token")[0] == 400


@pytest.mark.parametrize("flag,param", [
    ("AZWAIT_CLIENT_ID", "client_id"), ("AZWAIT_OBJECT_ID", "object_id"),
    ("AZWAIT_MSI_RES_ID", "msi_res_id"),
])
def test_user_assigned_identity(make_sim: Any, flag: str, param: str) -> None:
    """A user-assigned identity is asked for by client id, object id or resource id."""
    h = make_sim({"states": [["Succeeded", 0]]})
    ids = {"client_id": "11111111-2222-3333-4444-555555555555",
           "object_id": "66666666-7777-8888-9999-000000000000",
           "msi_res_id": "/subscriptions/s/resourceGroups/g/providers/"
                         "Microsoft.ManagedIdentity/userAssignedIdentities/azwait-id"}
    h = make_sim({"states": [["Succeeded", 0]], "identity": [
        {"client_id": ids["client_id"], "object_id": ids["object_id"],
         "resource_id": ids["msi_res_id"]}]})
    result = h.run(**{flag: ids[param]})
    assert result.code == 0, result.stderr
    token = next(r for r in h.sim.requests() if r["endpoint"] == "token")
    assert token["query"].get(param) == ids[param]


def test_arm_429_retry_after_is_honoured(make_sim: Any) -> None:
    """ARM 429 with Retry-After: the next read comes no sooner than asked."""
    h = make_sim({"states": [["Succeeded", 0]],
                  "faults": [{"endpoint": "arm", "status": 429, "retry_after": 2, "count": 1}]})
    result = h.run("--", *h.worker())
    assert result.code == 0
    reads = h.arm_reads()
    assert [r["status"] for r in reads] == [429, 200]
    assert reads[1]["wall"] - reads[0]["wall"] >= 2.0


@pytest.mark.parametrize("fault", [
    {"status": 500}, {"status": 503, "body": "html"}, {"status": 200, "body": "html"},
    {"status": 200, "body": "text"}, {"status": 502, "body": "empty"}, {"drop": True},
    {"status": 408},
])
def test_arm_transient_faults_then_ok(make_sim: Any, fault: dict[str, Any]) -> None:
    """5xx, 408, HTML or non-JSON bodies and dropped connections are retried."""
    h = make_sim({"states": [["Succeeded", 0]],
                  "faults": [{"endpoint": "arm", "count": 2, **fault}]})
    result = h.run("--", *h.worker())
    assert result.code == 0, result.stderr
    assert len(h.arm_reads()) == 3 and h.worker_ran() is not None


def test_403_that_clears_within_grace(make_sim: Any) -> None:
    """A role assignment that propagates within AZWAIT_RBAC_GRACE is waited for."""
    h = make_sim({"states": [["Succeeded", 0]], "rbac": {"forbidden_until": 1.5}})
    result = h.run("--", *h.worker())
    assert result.code == 0
    assert h.arm_reads()[0]["status"] == 403


def test_403_forever_exits_6_naming_role_and_scope(make_sim: Any) -> None:
    """ARM 403 past the grace: exit 6 naming the Reader role and the VM's scope."""
    h = make_sim({"rbac": {"forbidden": True}})
    result = h.run("--", *h.worker(), AZWAIT_RBAC_GRACE="1s")
    assert result.code == 6 and h.worker_ran() is None
    path = h.arm_reads()[0]["path"]
    assert "Reader" in result.stderr and path in result.stderr


def test_404_before_seen_is_retried(make_sim: Any) -> None:
    """ARM 404 for a VM never seen (replication lag) is retried."""
    h = make_sim({"states": [["Succeeded", 0]],
                  "faults": [{"endpoint": "arm", "status": 404, "count": 2}]})
    result = h.run("--", *h.worker())
    assert result.code == 0 and [r["status"] for r in h.arm_reads()] == [404, 404, 200]
