"""Run the installed ``azwait`` executable against the simulator (azwait-sim) on loopback."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from azwait_sim import Scenario, Simulator

AZWAIT = shutil.which("azwait", path=os.path.dirname(sys.executable)) or "azwait"

# The worker records who it is and when it started; its argv says where.
WORKER_CODE = (
    "import json, os, sys, time\n"
    "open(sys.argv[1], 'w').write(json.dumps("
    "{'pid': os.getpid(), 'at': time.time(), 'argv': sys.argv[2:]}))\n"
)


@dataclasses.dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    pid: int

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclasses.dataclass
class Harness:
    sim: Simulator
    tmp: Path

    @property
    def worker_file(self) -> Path:
        return self.tmp / "worker.json"

    def worker(self, *args: str) -> list[str]:
        return [sys.executable, "-c", WORKER_CODE, str(self.worker_file), *args]

    def worker_ran(self) -> Optional[dict[str, Any]]:
        if not self.worker_file.exists():
            return None
        data: dict[str, Any] = json.loads(self.worker_file.read_text())
        return data

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AZWAIT_")}
        env.update(
            AZWAIT_IMDS_ENDPOINT=self.sim.imds_url,
            AZWAIT_ARM_ENDPOINT=self.sim.arm_url,
            AZWAIT_STATE_DIR=str(self.tmp / "state"),
            AZWAIT_INTERVAL="0.2s",
            AZWAIT_TIMEOUT="30s",
            AZWAIT_LOG_FORMAT="json",
        )
        if self.sim.ca_path:
            env["REQUESTS_CA_BUNDLE"] = str(self.sim.ca_path)
        env.update(extra)
        return env

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [AZWAIT, "--config", "/dev/null", *args], env=self.env(**env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(self, *args: str, timeout: float = 60, **env: str) -> Result:
        proc = self.start(*args, **env)
        stdout, stderr = proc.communicate(timeout=timeout)
        return Result(proc.returncode, stdout, stderr, proc.pid)

    def arm_reads(self) -> list[dict[str, Any]]:
        return [r for r in self.sim.requests() if r["endpoint"] == "arm"]


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """azwait's JSON log lines in what it wrote to stderr (AZWAIT_LOG_FORMAT=json, the
    harness default)."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def log_lines(result: Result) -> list[dict[str, Any]]:
    return json_lines(result.stderr)


def log_span(result: Result) -> float:
    """Seconds between azwait's first and last log line, by its own timestamps: how long
    the program says it ran, with no clock of the test's in the measure."""
    stamps = [datetime.datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
              for line in log_lines(result)]
    return (stamps[-1] - stamps[0]).total_seconds()


@pytest.fixture
def make_sim(tmp_path: Path) -> Iterator[Any]:
    """Start a simulator for a scenario dict; stopped after the test."""
    started: list[Simulator] = []

    def make(scenario: Optional[dict[str, Any]] = None, tls: bool = True) -> Harness:
        sim = Simulator(Scenario.from_dict(scenario or {}), tls=tls,
                        cert_dir=tmp_path / "certs", log_path=tmp_path / "requests.jsonl")
        sim.start()
        started.append(sim)
        return Harness(sim, tmp_path)

    yield make
    for sim in started:
        sim.stop()


def stop(proc: subprocess.Popen[str], signum: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(signum)
