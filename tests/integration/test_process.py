"""The process contract: signals, exit codes, logs, notify, status, state."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from azwait.state import boot_id

from .conftest import AZWAIT, Harness, stop


def wait_for_arm_read(h: Harness, timeout: float = 15) -> None:
    limit = time.time() + timeout
    while not h.arm_reads():
        assert time.time() < limit, "azwait never reached ARM"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_wait_at_once(make_sim: Any, signum: int) -> None:
    """SIGTERM/SIGINT end the wait at once with 128+N, not at the next read a minute
    away; the worker never starts."""
    h = make_sim({"states": [["Creating", 0], ["Succeeded", 3]]})
    proc = h.start("--", *h.worker(), AZWAIT_INTERVAL="60s")
    wait_for_arm_read(h)
    stop(proc, signum)
    proc.communicate(timeout=5)  # a wait that went on to its next read would time out here
    assert proc.returncode == 128 + signum
    assert h.worker_ran() is None and len(h.arm_reads()) == 1


def test_missing_worker_is_127(make_sim: Any) -> None:
    """A COMMAND that does not exist: exit 127 with one line naming it."""
    h = make_sim({"states": [["Succeeded", 0]]})
    result = h.run("--", "/nonexistent/worker", "--flag")
    assert result.code == 127
    assert "/nonexistent/worker" in result.stderr and "Traceback" not in result.output


def test_not_executable_worker_is_126(make_sim: Any, tmp_path: Path) -> None:
    """A COMMAND that exists but cannot be executed: exit 126."""
    h = make_sim({"states": [["Succeeded", 0]]})
    script = tmp_path / "worker.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    result = h.run("--", str(script))
    assert result.code == 126 and str(script) in result.stderr


@pytest.mark.parametrize("args,env,names", [
    ((), {"AZWAIT_TIMOUT": "5m"}, "AZWAIT_TIMOUT"),
    (("--timeout", "soon"), {}, "soon"),
    ((), {"AZWAIT_INTERVAL": "0"}, "AZWAIT_INTERVAL"),
    ((), {"AZWAIT_CLIENT_ID": "a", "AZWAIT_OBJECT_ID": "b"}, "AZWAIT_CLIENT_ID"),
    (("--",), {}, "COMMAND"),
    (("--no-such-flag",), {}, "--no-such-flag"),
    (("status", "--", "x"), {}, "status"),
])
def test_bad_configuration_exits_2(make_sim: Any, args: tuple[str, ...], env: dict[str, str],
                                   names: str) -> None:
    """Bad input: exit 2, one line naming the problem, no request made, no traceback."""
    h = make_sim()
    result = h.run(*args, **env)
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0] and "Traceback" not in result.stderr
    assert h.sim.requests() == []


def test_dead_http_proxy_does_not_touch_imds(make_sim: Any) -> None:
    """HTTP_PROXY pointing nowhere: IMDS is still reached directly; ARM honours NO_PROXY."""
    h = make_sim({"states": [["Succeeded", 0]]})
    dead = "http://127.0.0.1:9"
    result = h.run("--", *h.worker(), HTTP_PROXY=dead, http_proxy=dead, HTTPS_PROXY=dead,
                   https_proxy=dead, NO_PROXY="localhost", no_proxy="localhost")
    assert result.code == 0, result.stderr
    imds = [r for r in h.sim.requests() if r["endpoint"] in ("instance", "token")]
    assert imds and not any(r["proxy_headers"] for r in imds)


def test_token_never_appears_in_output(make_sim: Any) -> None:
    """No access token in stdout/stderr, even at debug level and through failures."""
    h = make_sim({"states": [["Creating", 0], ["Succeeded", 1]],
                  "faults": [{"endpoint": "arm", "status": 500, "count": 1}]})
    result = h.run("--", "/bin/echo", "worker", AZWAIT_LOG_LEVEL="debug")
    tokens = h.sim.issued_tokens()
    assert result.code == 0 and tokens
    assert "Authorization" in result.output  # debug really shows the SDK's request log
    for token in tokens:
        assert token not in result.output
        assert token[:40] not in result.output


def test_marker_fast_path_makes_no_request(make_sim: Any) -> None:
    """Once Succeeded on this boot, later calls return at once without any request."""
    h = make_sim({"states": [["Succeeded", 0]]})
    assert h.run().code == 0
    before = len(h.sim.requests())
    marker = json.loads((h.tmp / "state" / "succeeded.json").read_text())
    assert marker["bootId"] == boot_id() and marker["vmId"]
    result = h.run("--", *h.worker())
    assert result.code == 0 and h.worker_ran() is not None
    assert len(h.sim.requests()) == before


def test_marker_from_another_boot_is_ignored(make_sim: Any) -> None:
    """A marker left by another boot (or a captured image) does not skip the wait."""
    # The VM's clock starts at the agent's first request, so a slow start-up (imports
    # on a busy machine) cannot carry the first ARM read past the flip.
    h = make_sim({"states": [["Creating", 0], ["Succeeded", 2]], "clock": "first-request"})
    state = h.tmp / "state"
    state.mkdir()
    (state / "succeeded.json").write_text(json.dumps(
        {"vmId": "other", "bootId": "0000-not-this-boot", "resourceId": "/x"}))
    result = h.run("--", *h.worker())
    assert result.code == 0 and len(h.arm_reads()) >= 2


def test_clean_removes_the_marker(make_sim: Any) -> None:
    """azwait clean forgets the per-VM state, so the next call asks Azure again."""
    h = make_sim({"states": [["Succeeded", 0]]})
    assert h.run().code == 0
    assert h.run("clean").code == 0
    assert not (h.tmp / "state" / "succeeded.json").exists()
    reads = len(h.arm_reads())
    assert h.run().code == 0 and len(h.arm_reads()) == reads + 1


def test_clean_that_cannot_remove_the_state_says_so_and_exits_2(make_sim: Any) -> None:
    """A state file azwait cannot remove (as a user without write access would meet
    it; a directory in its place fails the same way for root) is one line, not a bug."""
    h = make_sim()
    (h.tmp / "state" / "succeeded.json").mkdir(parents=True)
    result = h.run("clean")
    assert result.code == 2, result.stderr
    [line] = [json.loads(text) for text in result.stderr.splitlines()]
    assert line["level"] == "error" and "azwait clean cannot remove" in line["event"]
    assert "AZWAIT_STATE_DIR" in line["event"] and "Traceback" not in result.stderr


def test_concurrent_invocations_share_one_poller(make_sim: Any, tmp_path: Path) -> None:
    """Two azwait at once on one VM: one stream of ARM reads, both workers start."""
    h = make_sim({"states": [["Creating", 0], ["Succeeded", 3]]})
    first = h.start("--", "/bin/sh", "-c", f"echo one > {tmp_path}/one", AZWAIT_INTERVAL="0.5s")
    second = h.start("--", "/bin/sh", "-c", f"echo two > {tmp_path}/two",
                     AZWAIT_INTERVAL="0.5s")
    assert first.wait(timeout=20) == 0 and second.wait(timeout=20) == 0
    assert (tmp_path / "one").exists() and (tmp_path / "two").exists()
    reads = h.arm_reads()
    # One poller at 0.5 s ± 15 % for ~3 s makes at most ~8 reads; two would make twice that.
    assert 3 <= len(reads) <= 10
    tokens = [r for r in h.sim.requests() if r["endpoint"] == "token"]
    assert len(tokens) == 1


def test_notify_status_then_ready(make_sim: Any, tmp_path: Path) -> None:
    """Under systemd: STATUS= lines while waiting, then READY=1 when Succeeded."""
    h = make_sim({"states": [["Creating", 0], ["Succeeded", 2]], "clock": "first-request"})
    path = str(tmp_path / "notify.sock")
    messages: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(0.2)
        done = threading.Event()

        def listen() -> None:  # as systemd does, while the unit runs; then what is queued
            while True:
                try:
                    messages.append(sock.recv(4096).decode())
                except socket.timeout:
                    if done.is_set():
                        return

        listener = threading.Thread(target=listen)
        listener.start()
        result = h.run(NOTIFY_SOCKET=path)
        done.set()
        listener.join()
    assert result.code == 0
    waiting = [m for m in messages if m.startswith("STATUS=Waiting")]
    assert waiting and "Creating" in waiting[-1]
    assert "READY=1" in messages[-1] and "READY=1" not in "".join(messages[:-1])


def run_on_journal_stream(h: Harness, **env: str) -> tuple[int, str]:
    """Run azwait with stderr on a pipe that JOURNAL_STREAM names, as systemd sets it up."""
    read_end, write_end = os.pipe()
    status = os.fstat(write_end)
    proc = subprocess.Popen([AZWAIT, "--config", "/dev/null"], stdout=subprocess.DEVNULL,
                            stderr=write_end, env=h.env(
                                JOURNAL_STREAM=f"{status.st_dev}:{status.st_ino}", **env))
    os.close(write_end)
    with os.fdopen(read_end) as stream:
        output = stream.read()
    return proc.wait(timeout=30), output


def test_journal_lines_carry_priorities(make_sim: Any) -> None:
    """Under journald: <N> priority prefixes, errors at <3>, no timestamps of our own."""
    h = make_sim({"states": [["Creating", 0], ["Failed", 0.5]]})
    code, output = run_on_journal_stream(h, AZWAIT_LOG_FORMAT="auto")
    lines = output.strip().splitlines()
    assert code == 4
    assert all(line[:3] in ("<6>", "<4>", "<3>", "<7>") for line in lines)
    errors = [line for line in lines if line.startswith("<3>")]
    assert len(errors) == 1 and "Failed" in errors[0]
    assert not any("timestamp" in line or "2026-" in line for line in lines)


def test_inherited_journal_stream_is_not_trusted(make_sim: Any) -> None:
    """JOURNAL_STREAM naming some other stream (output redirected): no <N> prefixes."""
    h = make_sim({"states": [["Creating", 0], ["Failed", 0.5]]})
    result = h.run(JOURNAL_STREAM="8:1234", AZWAIT_LOG_FORMAT="auto")
    assert result.code == 4 and not result.stderr.startswith("<")


def test_config_error_under_journald_is_err_priority(make_sim: Any) -> None:
    """Even before logging is set up, an error under journald is at priority err."""
    h = make_sim()
    code, output = run_on_journal_stream(h, AZWAIT_TIMEOUT="x")
    assert code == 2 and output.startswith("<3>azwait: AZWAIT_TIMEOUT")


@pytest.mark.parametrize("timeline,code,state", [
    ([["Succeeded", 0]], 0, "Succeeded"),
    ([["Creating", 0]], 3, "Creating"),
    ([["Deleting", 0]], 4, "Deleting"),
])
def test_status_one_look(make_sim: Any, timeline: list[Any], code: int, state: str) -> None:
    """azwait status: one look, JSON report, exit 0 only when Succeeded."""
    h = make_sim({"states": timeline})
    result = h.run("status", "--json")
    report = json.loads(result.stdout)
    assert result.code == code
    assert report["state"] == state and report["identity"] == "system-assigned"
    assert report["resource"].endswith("/virtualMachines/0") and report["marker"] is None
    assert len(h.arm_reads()) == 1


def test_status_without_identity(make_sim: Any) -> None:
    """azwait status with no identity says so at once (exit 6), no waiting."""
    h = make_sim({"identity": "none"})
    result = h.run("status")
    assert result.code == 6 and "identity" in result.stdout


def test_us_government_cloud(make_sim: Any) -> None:
    """azEnvironment AzureUSGovernmentCloud: US Gov ARM endpoint and token audience."""
    h = make_sim({"cloud": "AzureUSGovernmentCloud", "states": [["Succeeded", 0]]})
    result = h.run("--", *h.worker())  # ARM overridden to the simulator; audience still US Gov
    assert result.code == 0, result.stderr
    token = next(r for r in h.sim.requests() if r["endpoint"] == "token")
    assert token["query"]["resource"].rstrip("/") == "https://management.usgovcloudapi.net"
    # Without the override, the endpoint follows azEnvironment (unreachable here: exit 3).
    status = h.run("status", "--json", AZWAIT_ARM_ENDPOINT="")
    assert json.loads(status.stdout)["arm"] == "https://management.usgovcloudapi.net"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a private mount namespace (root)")
def test_detach_without_systemd_exits_7(make_sim: Any) -> None:
    """--detach with no systemd as PID 1 (an empty /run): exit 7, one line, no request."""
    h = make_sim()
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", 'mount -t tmpfs none /run && exec "$@"', "sh",
         AZWAIT, "--config", "/dev/null", "--detach", "--", "/bin/true"],
        env=h.env(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 7
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "systemd" in lines[0]
    assert h.sim.requests() == []


@pytest.mark.parametrize("args", [("--detach",), ("--detach", "status"), ("--detach", "--")])
def test_detach_bad_arguments_exit_2(make_sim: Any, args: tuple[str, ...]) -> None:
    """--detach without a command, or with a verb: exit 2 before anything else."""
    h = make_sim()
    result = h.run(*args)
    assert result.code == 2 and len(result.stderr.strip().splitlines()) == 1
