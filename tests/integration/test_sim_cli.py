"""`azwait-sim` on the command line: the ready line, flags, exit codes, signals; and
`azwait sim`, which is gone, pointing at it."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

import azwait_sim
from azwait_sim import add_arguments, main, run

from .conftest import AZWAIT

SIM_DIR = str(Path(azwait_sim.__file__).resolve().parent.parent)
AZWAIT_SIM = shutil.which("azwait-sim", path=os.path.dirname(sys.executable)) or "azwait-sim"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="azwait-sim")
    add_arguments(parser)
    return parser.parse_args(list(argv))


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SIM_DIR, "PYTHONDONTWRITEBYTECODE": "1"}


def main_exit(argv: list[str]) -> Any:
    """main()'s exit status, whether returned or raised (argparse raises SystemExit)."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def wait_for(path: Path, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    ready: dict[str, Any] = json.loads(path.read_text())
    return ready


def test_run_prints_ready_line_and_serves_until_duration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """run(): one JSON line on stdout (same as --ready-file), serves, exits 0 after --duration."""
    ready_file, log = tmp_path / "ready.json", tmp_path / "log.jsonl"
    args = parse(
        "--duration",
        "1",
        "--ready-file",
        str(ready_file),
        "--log",
        str(log),
        "--cert-dir",
        str(tmp_path / "certs"),
        "--states",
        "Succeeded@0",
        "--vms",
        "2",
    )
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(run(args)))
    thread.start()
    ready = wait_for(ready_file)
    request = urllib.request.Request(
        ready["imds"] + "/vm/1/metadata/instance/compute/name?api-version=2021-02-01&format=text",
        headers={"Metadata": "true"},
    )
    assert NO_PROXY.open(request, timeout=5).read() == b"vmss-azwait_1"
    thread.join(timeout=10)
    assert codes == [0]
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [ready]
    assert ready["arm"].startswith("https://localhost:")
    assert ready["ca"] == str(tmp_path / "certs" / "ca.pem") and ready["pid"] == os.getpid()
    assert json.loads(log.read_text().splitlines()[0])["vm"] == 1


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--vms", "many"], "--vms"),
        (["--states", "Creating"], "--states"),
        (["--cloud", "AzureMarsCloud"], "cloud"),
        (["--clock", "boot"], "clock"),
        (["--identity", "tenant=x"], "--identity"),
        (["--imds-port", "70000"], "--imds-port"),
        (["--duration", "soon"], "--duration"),
        (["--scenario", "/nonexistent/s.json"], "--scenario"),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad flags: exit 2, one stderr line "azwait-sim: <problem>", nothing on stdout."""
    assert run(parse(*argv)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"azwait-sim: {problem}")
    assert captured.err.count("\n") == 1


def test_bad_scenario_file_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A scenario file with a bad key: exit 2 and the key in the message."""
    scenario = tmp_path / "s.json"
    scenario.write_text(json.dumps({"faults": [{"endpoint": "arm", "stauts": 500}]}))
    assert run(parse("--scenario", str(scenario))) == 2
    assert capsys.readouterr().err.startswith("azwait-sim: faults[0].stauts: unknown key")


def test_port_in_use_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A port that cannot be bound is reported in one line, exit 2."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert run(parse("--imds-port", str(port), "--no-tls")) == 2
    assert capsys.readouterr().err.startswith("azwait-sim: ")


def test_tls_name_is_in_the_certificate(tmp_path: Path) -> None:
    """--tls-name adds a DNS name to the ARM certificate beside the ARM host names."""
    certs = tmp_path / "certs"
    assert run(parse("--duration", "0", "--cert-dir", str(certs), "--tls-name", "arm.test")) == 0
    cert = x509.load_pem_x509_certificate((certs / "server.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"arm.test", "localhost", "management.azure.com"} <= set(
        names.get_values_for_type(x509.DNSName)
    )


def test_module_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`python -m azwait_sim` prints the ready line and exits 0 on SIGTERM."""
    proc = subprocess.Popen(
        python("-m", "azwait_sim", "--no-tls", "--cert-dir", str(tmp_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    assert ready["ca"] is None and ready["pid"] == proc.pid
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert proc.stderr is not None and proc.stderr.read() == ""


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--states"], "argument --states: expected one argument"),
        (["--states", "Creating@soon"], "--states"),
    ],
)
def test_main_bad_input_is_one_line_and_exit_2(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """main(): argparse's complaints too are one line (no usage block), exit 2."""
    assert main_exit(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"azwait-sim: {problem}") and captured.err.count("\n") == 1


def test_main_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_exit(["--version"]) == 0
    assert capsys.readouterr().out == f"azwait-sim {azwait_sim.__version__}\n"


def test_the_azwait_sim_command(tmp_path: Path) -> None:
    """The installed console script: --help, and a bad flag in one line with no traceback."""
    done = subprocess.run(
        [AZWAIT_SIM, "--help"], check=False, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: azwait-sim ")
    assert "--states" in done.stdout and "--version" in done.stdout
    done = subprocess.run(
        [AZWAIT_SIM, "--imds-port", "http"], check=False, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "azwait-sim: --imds-port: expected a port number 0-65535, got 'http'\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["sim", "--states", "Creating@0,Succeeded@15"],
        ["sim", "--help"],
        ["sim"],
        ["--config", "/dev/null", "sim", "--imds-port", "18080"],
    ],
)
def test_azwait_sim_is_gone_and_says_where_it_went(argv: list[str]) -> None:
    """`azwait sim`: exit 2, one line naming the azwait-sim command, before anything else."""
    done = subprocess.run(
        [AZWAIT, *argv], check=False, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("azwait: ") and done.stderr.count("\n") == 1
    assert "azwait-sim --help" in done.stderr and "production" in done.stderr


def test_import_stays_light() -> None:
    """Importing the simulator loads nothing of the agent, nor its HTTP or Azure stack."""
    code = (
        "import sys, azwait_sim\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('azwait', 'azure', 'requests', 'structlog')]\n"
        "print(heavy)\n"
    )
    done = subprocess.run(
        python("-c", code), check=False, capture_output=True, text=True, env=child_env(), timeout=30
    )
    assert done.stdout.strip() == "[]", done.stderr
