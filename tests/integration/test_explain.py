"""Failures that explain themselves, deadlines that hold, state that never blocks a worker.

Deadlines are checked on azwait's own log: the time between its first and its
last line, not a clock in the test.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import AZWAIT, Harness, Result, log_lines, log_span

SLACK = 3.0  # "within a few seconds": start-up, the last request's own limit


def last_error(result: Result) -> str:
    errors = [line["event"] for line in log_lines(result) if line["level"] == "error"]
    assert errors, result.stderr
    return str(errors[-1])


# -- 1. a state directory azwait cannot write ------------------------------------

def test_unwritable_state_dir_still_starts_the_worker(make_sim: Any, tmp_path: Path) -> None:
    """No write access to AZWAIT_STATE_DIR: a warning, the wait, and the worker."""
    h = make_sim({"states": [["Succeeded", 0]]})
    state = tmp_path / "locked-state"
    state.mkdir()
    if os.geteuid() == 0:
        # Root writes anywhere: a read-only mount is what it cannot write.
        argv = ["unshare", "--mount", "sh", "-c",
                f"mount -t tmpfs -o ro none {state} && exec \"$@\"", "sh"]
    else:
        state.chmod(0o500)
        argv = []
    done = subprocess.run([*argv, AZWAIT, "--config", "/dev/null", "--", *h.worker()],
                          env=h.env(AZWAIT_STATE_DIR=str(state)), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert h.worker_ran() is not None
    warnings = [line for line in done.stderr.splitlines() if '"warning"' in line]
    assert any("cannot take the wait lock" in line and str(state) in line for line in warnings)
    assert "internal error" not in done.stderr
    assert len(h.arm_reads()) == 1


# -- 2. deadlines per request ------------------------------------------------------

@pytest.mark.parametrize("endpoint,env,code,says", [
    # ARM sends its headers, then a byte a second: AZWAIT_TIMEOUT still holds.
    ("arm", {"AZWAIT_TIMEOUT": "8s"}, 3, "did not answer in full within"),
    # The instance document trickles: AZWAIT_IMDS_GRACE holds.
    ("instance", {"AZWAIT_IMDS_GRACE": "6s"}, 5, "did not answer /metadata/instance in full"),
    # The token endpoint trickles: the same IMDS grace.
    ("token", {"AZWAIT_IMDS_GRACE": "6s"}, 5, "token endpoint did not answer in full"),
])
def test_a_trickled_body_cannot_stretch_a_deadline(make_sim: Any, endpoint: str,
                                                   env: dict[str, str], code: int,
                                                   says: str) -> None:
    h = make_sim({"states": [["Creating", 0]], "faults": [{"endpoint": endpoint, "trickle": 1}]})
    limit = max(float(value.rstrip("s")) for value in env.values())
    result = h.run("--", *h.worker(), timeout=120, **env)
    assert result.code == code, result.stderr
    assert h.worker_ran() is None
    assert says in result.stderr
    assert log_span(result) <= limit + SLACK, result.stderr


def test_a_hanging_imds_ends_with_its_grace(make_sim: Any) -> None:
    """IMDS accepts and never answers: a 5 s grace ends near 5 s (it took 10.9 s)."""
    h = make_sim({"faults": [{"endpoint": "instance", "delay": 60}]})
    result = h.run(AZWAIT_IMDS_GRACE="5s", timeout=120)
    assert result.code == 5, result.stderr
    assert "AZWAIT_IMDS_GRACE=5s" in last_error(result)
    assert log_span(result) <= 5 + SLACK, result.stderr


# -- 3. a marker vouches only for what it saw --------------------------------------

def test_marker_does_not_vouch_for_another_endpoint(make_sim: Any) -> None:
    """Succeeded seen through one simulator says nothing about another one's VM."""
    first = make_sim({"states": [["Succeeded", 0]]})
    assert first.run().code == 0
    marker = json.loads((first.tmp / "state" / "succeeded.json").read_text())
    assert marker["imdsEndpoint"] == first.sim.imds_url
    assert marker["armEndpoint"] == first.sim.arm_url and marker["resourceId"]
    failed = make_sim({"states": [["Failed", 0]]})  # same state dir: the same tmp_path
    result = failed.run("--", *failed.worker())
    assert result.code == 4, result.stderr
    assert failed.worker_ran() is None and len(failed.arm_reads()) == 1
    # An ARM override of its own is another endpoint too, even with the same IMDS
    # (whose token the other ARM refuses: the wait runs out).
    reads = len(failed.arm_reads())
    again = first.run("--", *first.worker(), AZWAIT_ARM_ENDPOINT=failed.sim.arm_url,
                      AZWAIT_TIMEOUT="3s")
    assert again.code == 3 and "already Succeeded" not in again.stderr
    assert len(failed.arm_reads()) > reads


def test_marker_fast_path_names_the_resource(make_sim: Any) -> None:
    h = make_sim({"states": [["Succeeded", 0]]})
    first = h.run()
    assert first.code == 0
    second = h.run()
    done = [line for line in log_lines(second) if line["event"] == "VM is Succeeded"]
    assert done and done[0]["resource_id"].endswith("/virtualMachines/0")


# -- 4. a named configuration file must exist ---------------------------------------

def test_missing_config_file_is_exit_2(make_sim: Any, tmp_path: Path) -> None:
    h = make_sim()
    missing = tmp_path / "no-such.conf"
    done = subprocess.run([AZWAIT, "--config", str(missing), "--", "/bin/true"],
                          env=h.env(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "does not exist" in lines[0]
    assert h.sim.requests() == []


# -- 5. --detach checks COMMAND before the hand-off ----------------------------------

@pytest.mark.parametrize("kind,code", [("missing", 127), ("bare", 127), ("plain-file", 126),
                                       ("directory", 126)])
def test_detach_checks_the_command_first(make_sim: Any, tmp_path: Path, kind: str,
                                         code: int) -> None:
    h = make_sim()
    plain = tmp_path / "worker.txt"
    plain.write_text("not a program\n")
    command = {"missing": str(tmp_path / "no-such-worker"), "bare": "no-such-worker-xyz",
               "plain-file": str(plain), "directory": str(tmp_path)}[kind]
    result = h.run("--detach", "--", command, "--flag")
    assert result.code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and command in lines[0]
    assert "handed off" not in result.output and h.sim.requests() == []


# -- 6. TLS trust and proxies --------------------------------------------------------

def system_bundle() -> str:
    import certifi

    return str(certifi.where())


def test_untrusted_certificate_is_diagnosed_and_ends_with_8(make_sim: Any) -> None:
    """ARM's certificate from a CA not in the bundle: one line that says what and how
    to fix it, on first sight; exit 8 after AZWAIT_NETWORK_GRACE."""
    h = make_sim({"states": [["Creating", 0]]})
    bundle = system_bundle()
    result = h.run("--", *h.worker(), REQUESTS_CA_BUNDLE=bundle, AZWAIT_NETWORK_GRACE="4s",
                   timeout=60)
    assert result.code == 8, result.stderr
    first = next(line for line in log_lines(result) if line["level"] == "warning")["problem"]
    for part in ("TLS verification of localhost failed", "certificate", bundle,
                 "update-ca-certificates", "REQUESTS_CA_BUNDLE", "NO_PROXY"):
        assert part in first, first
    assert first in last_error(result) and "AZWAIT_NETWORK_GRACE=4s" in last_error(result)
    assert log_span(result) <= 4 + SLACK
    assert h.worker_ran() is None and h.arm_reads() == []


def test_untrusted_certificate_in_status_is_8_at_once(make_sim: Any) -> None:
    h = make_sim({"states": [["Succeeded", 0]]})
    result = h.run("status", REQUESTS_CA_BUNDLE=system_bundle())
    assert result.code == 8
    assert "TLS verification of localhost failed" in result.stdout
    assert "GRACE" not in result.stdout


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def proxy_407() -> Iterator[str]:
    """A proxy that answers every CONNECT with 407 Proxy Authentication Required."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b"Proxy-Authenticate: Basic realm=\"corp\"\r\n"
                             b"Content-Length: 0\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.mark.parametrize("which", ["dead", "407"])
def test_proxy_failures_are_diagnosed_and_end_with_8(make_sim: Any, proxy_407: str,
                                                     which: str) -> None:
    h = make_sim({"states": [["Creating", 0]]})
    where = f"127.0.0.1:{closed_port()}" if which == "dead" else proxy_407
    proxy = f"http://someone:s3cret-pw@{where}"
    result = h.run("--", *h.worker(), HTTPS_PROXY=proxy, https_proxy=proxy, NO_PROXY="",
                   no_proxy="", AZWAIT_NETWORK_GRACE="3s", timeout=60)
    assert result.code == 8, result.stderr
    error = last_error(result)
    assert f"proxy http://{where}" in error and "NO_PROXY" in error
    assert ("refused the connection" if which == "dead" else "407") in error
    assert "s3cret-pw" not in result.output
    assert log_span(result) <= 3 + SLACK
    # IMDS was reached directly all along.
    assert [r for r in h.sim.requests() if r["endpoint"] == "instance"]


# -- 7. status describes one look -----------------------------------------------------

@pytest.mark.parametrize("scenario,code,says", [
    ({"faults": [{"endpoint": "instance", "status": 403}]}, 5,
     "IMDS answered 403 to api-version 2021-12-13"),
    ({"rbac": {"forbidden": True}}, 6, "ARM answered 403"),
    ({"deleted_after": 0}, 4, "may not be visible yet"),
])
def test_status_messages_describe_one_look(make_sim: Any, scenario: dict[str, Any], code: int,
                                           says: str) -> None:
    h = make_sim(scenario)
    result = h.run("status")
    assert result.code == code, result.output
    error = next(line for line in result.stdout.splitlines() if line.startswith("error:"))
    assert says in error
    for wait_words in ("GRACE", "whole", "still refused", "even after"):
        assert wait_words not in error


def test_status_json_marker_is_data(make_sim: Any) -> None:
    h = make_sim({"states": [["Succeeded", 0]]})
    assert json.loads(h.run("status", "--json").stdout)["marker"] is None
    assert h.run().code == 0
    marker = json.loads(h.run("status", "--json").stdout)["marker"]
    assert marker["vouches"] is True and marker["why_not"] is None
    assert marker["path"] == str(h.tmp / "state" / "succeeded.json")
    assert marker["content"]["resourceId"].endswith("/virtualMachines/0")
    other = json.loads(h.run("status", "--json", AZWAIT_IMDS_ENDPOINT="http://127.0.0.1:9",
                             timeout=60).stdout)["marker"]
    assert other["vouches"] is False and "http://127.0.0.1:9" in other["why_not"]


# -- 8. a closed pipe is not a bug --------------------------------------------------------

def run_into_closed_pipe(h: Harness, *args: str, stream: str = "stdout") -> int:
    read, write = os.pipe()
    os.close(read)  # every write to the pipe now fails with EPIPE
    try:
        done = subprocess.run([AZWAIT, "--config", "/dev/null", *args], env=h.env(),
                              timeout=60, **{stream: write})
    finally:
        os.close(write)
    return done.returncode


@pytest.mark.parametrize("args,code", [(("status",), 0), (("status", "--json"), 0),
                                       (("--help",), 0), (("--version",), 0)])
def test_closed_stdout_keeps_the_exit_code(make_sim: Any, args: tuple[str, ...],
                                           code: int) -> None:
    h = make_sim({"states": [["Succeeded", 0]]})
    assert run_into_closed_pipe(h, *args) == code


def test_closed_log_stream_does_not_stop_the_worker(make_sim: Any) -> None:
    h = make_sim({"states": [["Creating", 0], ["Succeeded", 1]]})
    assert run_into_closed_pipe(h, "--", *h.worker(), stream="stderr") == 0
    assert h.worker_ran() is not None


# -- 9. readable log fields ---------------------------------------------------------

def test_start_line_is_readable(make_sim: Any) -> None:
    h = make_sim({"states": [["Succeeded", 0]]})
    result = h.run("--", *h.worker("two words"), AZWAIT_LOG_FORMAT="auto", AZWAIT_TIMEOUT="0")
    assert result.code == 0
    start = result.stderr.splitlines()[0]
    assert "azwait starting" in start and 'timeout="no limit"' in start
    assert "None" not in start and "drain_" not in start and "client_id" not in start
    begin = next(line for line in result.stderr.splitlines() if "starting worker" in line)
    assert "['" not in begin and "'two words'" in begin


def test_debug_console_is_one_line_per_event(make_sim: Any) -> None:
    h = make_sim({"states": [["Creating", 0], ["Succeeded", 1]]})
    result = h.run("--", *h.worker(), AZWAIT_LOG_FORMAT="console", AZWAIT_LOG_LEVEL="debug")
    assert result.code == 0
    lines = result.stderr.splitlines()
    assert len(lines) > 10 and any("Request URL" in line for line in lines)
    stamped = [line for line in lines if line[:2].isdigit() and line[2] == ":"]
    assert stamped == lines, [line for line in lines if line not in stamped][:3]


# -- 10, 11. durations and options ---------------------------------------------------------

def test_compound_durations_everywhere(make_sim: Any) -> None:
    h = make_sim({"states": [["Succeeded", 0]]})
    result = h.run("--timeout", "1h30m", AZWAIT_IMDS_GRACE="1m30s", AZWAIT_LOG_FORMAT="auto")
    assert result.code == 0, result.stderr
    start = result.stderr.splitlines()[0]
    assert "timeout=1h30m" in start and "imds_grace=1m30s" in start
    bad = h.run(AZWAIT_RBAC_GRACE="30m1h")
    assert bad.code == 2 and "AZWAIT_RBAC_GRACE" in bad.stderr and "1h30m" in bad.stderr


def test_worker_is_also_an_option(make_sim: Any) -> None:
    h = make_sim({"states": [["Succeeded", 0]]})
    result = h.run("--worker", shlex.join(h.worker("from-the-option")))
    assert result.code == 0, result.stderr
    ran = h.worker_ran()
    assert ran is not None and ran["argv"] == ["from-the-option"]


def test_a_stray_word_shows_the_command_with_its_dashes(make_sim: Any) -> None:
    h = make_sim()
    result = h.run("/bin/true", "-x")
    assert result.code == 2
    line = result.stderr.strip()
    assert "'azwait -- /bin/true -x'" in line and "the verbs are" in line
    assert "Traceback" not in line
    assert h.sim.requests() == []


def test_every_key_is_an_option() -> None:
    from azwait.config import KEYS

    help_text = subprocess.run([AZWAIT, "--help"], capture_output=True, text=True,
                               timeout=30, env={**os.environ, "COLUMNS": "200"}).stdout
    for key in KEYS:
        assert key.flag in help_text, key.flag


@pytest.mark.parametrize("status", [400, 409])
def test_an_arm_4xx_that_waiting_cannot_change_is_exit_9(make_sim: Any, status: int) -> None:
    """Not a bug (1), and not retried: one read, a typed error naming the resource."""
    h = make_sim({"faults": [{"endpoint": "arm", "status": status}]})
    result = h.run("--", *h.worker())
    assert result.code == 9, result.stderr
    assert len(h.arm_reads()) == 1 and h.worker_ran() is None
    error = last_error(result)
    assert "ARM rejected the read of /subscriptions/" in error and str(status) in error
