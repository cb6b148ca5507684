"""azwait events against the simulator: Scheduled Events drained, approved, once each."""

from __future__ import annotations

import json
import shlex
import signal
import sys
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from .conftest import Harness, json_lines, stop

# The drain records when it ran, what it was told, and its pid; then sleeps argv[2] s.
DRAIN_CODE = (
    "import json, os, sys, time\n"
    "out = sys.argv[1]\n"
    "record = {'start': time.time(), 'pid': os.getpid(), 'stdin': json.load(sys.stdin),\n"
    "          'env': {k: v for k, v in os.environ.items() if k.startswith('AZWAIT_EVENT_')}}\n"
    "open(out + '.start', 'a').write(json.dumps(record) + '\\n')\n"
    "time.sleep(float(sys.argv[2]))\n"
    "open(out + '.end', 'a').write(json.dumps({'end': time.time()}) + '\\n')\n"
)


def drain(h: Harness, seconds: float = 0.3) -> list[str]:
    return ["--", sys.executable, "-c", DRAIN_CODE, str(h.tmp / "drain"), str(seconds)]


def drains(h: Harness, which: str = "start") -> list[dict[str, Any]]:
    path = h.tmp / f"drain.{which}"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def approvals(h: Harness) -> list[dict[str, Any]]:
    return [r for r in h.sim.requests() if r["endpoint"] == "events-approve"]


def approved(h: Harness) -> bool:
    """An approval arrived and the watcher has read the document since: it has had the
    answer (and logged it), not merely sent the request."""
    log = h.sim.requests()
    done = [r["wall"] for r in log if r["endpoint"] == "events-approve"]
    return bool(done) and any(r["endpoint"] == "events" and r["wall"] > done[-1] for r in log)


def clock_zero(h: Harness) -> float:
    """Wall time of VM 0's scenario clock 0."""
    first = h.sim.requests()[0]
    return float(first["wall"] - first["t"])


def until(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def watch(h: Harness, done: Any, *args: str, **env: str) -> tuple[int, str]:
    """Run azwait events until ``done()``, then SIGTERM it; (exit code, output)."""
    proc = h.start("events", *args, **env)
    try:
        until(done)
    finally:
        stop(proc)
    out, err = proc.communicate(timeout=20)
    return proc.returncode, out + err


def reads_after(h: Harness, t: float) -> int:
    """Scheduled Events documents read after ``t`` s of the scenario's clock."""
    return sum(1 for r in h.sim.requests() if r["endpoint"] == "events" and r["t"] > t)


def test_preempt_is_drained_then_approved_before_not_before(make_sim: Any) -> None:
    h = make_sim({"events": [{"at": 2, "type": "Preempt", "not_before": 30}]})
    proc = h.start("events", *drain(h, 0.5))
    try:
        until(lambda: approved(h))
    finally:
        stop(proc)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    [ran], [ended], [approval] = drains(h), drains(h, "end"), approvals(h)
    appeared = clock_zero(h) + 2
    assert ran["start"] - appeared <= 2.0  # polled about once a second
    event = ran["stdin"]
    assert event["EventType"] == "Preempt" and h.sim.vm_info(0)["name"] in event["Resources"]
    assert ran["env"]["AZWAIT_EVENT_ID"] == event["EventId"] == approval["event_id"]
    assert ran["env"]["AZWAIT_EVENT_TYPE"] == "Preempt"
    not_before = parsedate_to_datetime(ran["env"]["AZWAIT_EVENT_NOT_BEFORE"]).timestamp()
    assert ended["end"] <= approval["wall"] < not_before
    assert approval["status"] == 200
    assert "event approved" in err


def test_an_event_for_another_vm_is_neither_drained_nor_approved(make_sim: Any) -> None:
    h = make_sim({"events": [{"at": 0.5, "type": "Terminate", "resources": ["vmss_other"]}]})
    code, out = watch(h, lambda: reads_after(h, 0.5) >= 3, *drain(h))
    assert code == 0
    assert drains(h) == [] and approvals(h) == []
    assert "event for other VMs" in out and "vmss_other" in out


def test_a_repeated_document_is_not_drained_twice(make_sim: Any) -> None:
    """The approval is refused, so the event stays; a new event changes the document."""
    h = make_sim({
        "events": [{"at": 0.5, "type": "Preempt"},
                   {"at": 2.5, "type": "Terminate", "resources": ["vmss_other"]}],
        "faults": [{"endpoint": "events-approve", "status": 400}],
    })
    code, out = watch(h, lambda: reads_after(h, 2.5) >= 2, *drain(h, 0.1))
    assert code == 0
    assert len(drains(h)) == 1
    assert [a["status"] for a in approvals(h)] == [400]  # a 400 is not retried
    assert "event not approved" in out and "event for other VMs" in out


def test_a_hanging_drain_is_cut_at_the_timeout_and_the_event_still_approved(
        make_sim: Any) -> None:
    h = make_sim({"events": [{"at": 0.5, "type": "Terminate", "not_before": 120}]})
    proc = h.start("events", *drain(h, 600), AZWAIT_DRAIN_TIMEOUT="2s")
    try:
        until(lambda: approved(h))
    finally:
        stop(proc)
    _, err = proc.communicate(timeout=20)
    [ran], [approval] = drains(h), approvals(h)
    assert drains(h, "end") == [] and approval["status"] == 200
    assert not Path(f"/proc/{ran['pid']}").exists()  # the whole group was stopped
    [cut] = [line for line in json_lines(err) if line["event"] == "drain cut at its limit"]
    assert cut["limit"] == 2.0 and cut["seconds"] >= 2.0


def test_not_before_bounds_the_drain(make_sim: Any) -> None:
    """A 5-minute drain timeout, but only 6 s of notice: approved before NotBefore."""
    h = make_sim({"events": [{"at": 0.5, "type": "Preempt", "not_before": 6}]})
    proc = h.start("events", *drain(h, 600), AZWAIT_DRAIN_TIMEOUT="5m")
    try:
        until(lambda: approved(h))
    finally:
        stop(proc)
    _, err = proc.communicate(timeout=20)
    [ran], [approval] = drains(h), approvals(h)
    not_before = parsedate_to_datetime(ran["env"]["AZWAIT_EVENT_NOT_BEFORE"]).timestamp()
    assert approval["wall"] < not_before and approval["status"] == 200
    [cut] = [line for line in json_lines(err) if line["event"] == "drain cut at its limit"]
    assert cut["limit"] < 6.0 - 2.0  # the notice, less the approval's margin


def test_types_left_out_of_drain_events_are_left_alone(make_sim: Any) -> None:
    h = make_sim({"events": [{"at": 0.5, "type": "Reboot"}, {"at": 0.5, "type": "Freeze"}]})
    code, out = watch(h, lambda: approved(h), *drain(h),
                      AZWAIT_DRAIN_EVENTS="Preempt,Terminate,Freeze")
    assert code == 0
    assert [d["stdin"]["EventType"] for d in drains(h)] == ["Freeze"]
    assert len(approvals(h)) == 1
    assert "event type not drained" in out


def test_imds_errors_are_retried(make_sim: Any) -> None:
    h = make_sim({"events": [{"at": 0.5, "type": "Preempt"}],
                  "faults": [{"endpoint": "events", "status": 500, "end": 3}]})
    proc = h.start("events", *drain(h, 0.1))
    try:
        until(lambda: approved(h))
    finally:
        stop(proc)
    _, err = proc.communicate(timeout=20)
    assert len(drains(h)) == 1 and approvals(h)[0]["status"] == 200
    assert "Scheduled Events unavailable; retrying" in err
    assert "Scheduled Events back" in err


def test_sigterm_mid_drain_stops_the_drain_and_exits_zero(make_sim: Any) -> None:
    h = make_sim({"events": [{"at": 0.5, "type": "Preempt", "not_before": 120}]})
    proc = h.start("events", *drain(h, 600))
    until(lambda: drains(h))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert not Path(f"/proc/{drains(h)[0]['pid']}").exists()
    assert approvals(h) == []
    assert "Traceback" not in err


def test_no_drain_command_is_a_configuration_error(make_sim: Any) -> None:
    h = make_sim()
    result = h.run("events")
    assert result.code == 2
    [line] = result.stderr.strip().splitlines()
    assert "azwait events needs AZWAIT_DRAIN_COMMAND (or -- COMMAND)" in line


def test_drain_command_from_the_environment_without_a_shell(make_sim: Any) -> None:
    h = make_sim({"events": [{"at": 0.5, "type": "Preempt"}]})
    marker = h.tmp / "argv"
    code = (f"import sys; open({str(marker)!r}, 'w').write(repr(sys.argv[1:]))")
    command = shlex.join([sys.executable, "-c", code, "a b", "$HOME;"])
    proc = h.start("events", AZWAIT_DRAIN_COMMAND=command)
    try:
        until(lambda: approved(h))
    finally:
        stop(proc)
    proc.communicate(timeout=20)
    assert marker.read_text() == repr(["a b", "$HOME;"])


@pytest.mark.parametrize("value", ["Preempt,Teleport", ""])
def test_bad_drain_events_is_rejected(make_sim: Any, value: str) -> None:
    h = make_sim()
    result = h.run("events", *drain(h), AZWAIT_DRAIN_EVENTS=value)
    assert result.code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "AZWAIT_DRAIN_EVENTS" in result.stderr

