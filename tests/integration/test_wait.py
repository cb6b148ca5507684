"""The wait itself: the real azwait program against the simulator."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Harness, log_span


def flip_wall(h: Harness, at: float) -> float:
    """Wall-clock time of scenario second ``at`` (the request log carries both clocks)."""
    first = h.sim.requests()[0]
    return float(first["wall"] - first["t"] + at)


def test_creating_then_succeeded_starts_worker_after_flip(make_sim: Any) -> None:
    """Creating→Succeeded: the worker starts after the flip, never before, in azwait's PID."""
    h = make_sim({"states": [["Creating", 0], ["Succeeded", 2]]})
    result = h.run("--", *h.worker("a b", "$HOME", ";"))
    worker = h.worker_ran()
    assert result.code == 0, result.stderr
    assert worker is not None and worker["at"] >= flip_wall(h, 2.0)
    assert worker["pid"] == result.pid  # exec'd in place
    assert worker["argv"] == ["a b", "$HOME", ";"]  # argv as given, no shell
    states = [r["status"] for r in h.arm_reads()]
    assert len(states) >= 3 and all(code == 200 for code in states)


def test_already_succeeded(make_sim: Any) -> None:
    """A VM that is already Succeeded starts the worker after one ARM read."""
    h = make_sim({"states": [["Succeeded", 0]]})
    result = h.run("--", *h.worker())
    assert result.code == 0 and h.worker_ran() is not None
    assert len(h.arm_reads()) == 1


def test_updating_then_succeeded(make_sim: Any) -> None:
    """Updating (e.g. extensions running) is waited through."""
    h = make_sim({"states": [["Updating", 0], ["Succeeded", 1]]})
    result = h.run("--", *h.worker())
    assert result.code == 0 and h.worker_ran()["at"] >= flip_wall(h, 1.0)  # type: ignore[index]


@pytest.mark.parametrize("kind", ["vm", "flex"])
def test_plain_vm_resource_ids(make_sim: Any, kind: str) -> None:
    """Single VMs and Flexible scale-set instances (…/virtualMachines/NAME) work too."""
    h = make_sim({"kind": kind, "states": [["Creating", 0], ["Succeeded", 1]]})
    result = h.run("--", *h.worker())
    assert result.code == 0, result.stderr
    paths = {r["path"] for r in h.arm_reads()}
    assert len(paths) == 1 and "/virtualMachineScaleSets/" not in paths.pop()


def test_worker_from_configuration(make_sim: Any) -> None:
    """AZWAIT_WORKER is used when no -- COMMAND is given (split into words, no shell)."""
    h = make_sim({"states": [["Succeeded", 0]]})
    import shlex

    result = h.run(AZWAIT_WORKER=shlex.join(h.worker("x y")))
    assert result.code == 0 and h.worker_ran()["argv"] == ["x y"]  # type: ignore[index]


def test_no_command_exits_zero(make_sim: Any) -> None:
    """With nothing to exec, azwait exits 0 once Succeeded (ExecStartPre= use)."""
    h = make_sim({"states": [["Creating", 0], ["Succeeded", 1]]})
    result = h.run()
    assert result.code == 0 and h.worker_ran() is None


@pytest.mark.parametrize("timeline,extra", [
    ([["Creating", 0], ["Failed", 1]], {}),
    ([["Creating", 0], ["Canceled", 1]], {}),
    ([["Creating", 0], ["Deleting", 1]], {}),
    ([["Creating", 0]], {"deleted_after": 1}),
])
def test_terminal_outcomes_exit_4_without_worker(make_sim: Any, timeline: list[Any],
                                                 extra: dict[str, Any]) -> None:
    """Failed, Canceled, Deleting and deleted-after-seen: exit 4, the worker never starts."""
    h = make_sim({"states": timeline, **extra})
    result = h.run("--", *h.worker())
    assert result.code == 4, result.stderr
    assert h.worker_ran() is None
    assert '"level": "error"' in result.stderr


def test_on_failed_wait_polls_through_failed(make_sim: Any) -> None:
    """AZWAIT_ON_FAILED=wait: a Failed VM that recovers still starts the worker."""
    h = make_sim({"states": [["Creating", 0], ["Failed", 0.5], ["Succeeded", 2]]})
    result = h.run("--", *h.worker(), AZWAIT_ON_FAILED="wait")
    assert result.code == 0 and h.worker_ran() is not None
    assert '"state": "Failed"' in result.stderr


def test_timeout_exits_3(make_sim: Any) -> None:
    """Still Creating at AZWAIT_TIMEOUT: exit 3, on time, no worker."""
    h = make_sim({"states": [["Creating", 0]]})
    result = h.run("--", *h.worker(), AZWAIT_TIMEOUT="2s")
    assert result.code == 3 and h.worker_ran() is None
    assert "AZWAIT_TIMEOUT" in result.stderr
    assert log_span(result) < 2 + 0.8  # the deadline, and at most the end of one last read


def test_timeout_is_not_overrun_by_retry_after(make_sim: Any) -> None:
    """A Retry-After longer than the time left ends the wait at the deadline, not after."""
    h = make_sim({"faults": [{"endpoint": "arm", "status": 429, "retry_after": 30}]})
    result = h.run(AZWAIT_TIMEOUT="2s")
    assert result.code == 3
    assert log_span(result) < 2 + 0.8
    assert len(h.arm_reads()) == 1
