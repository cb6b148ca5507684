"""Contracts written once: the exit statuses no restart can fix, shared by the unit
file and --detach; every documented code has one type."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from azwait.detach import service_args
from azwait.errors import AzwaitError, exit_codes, no_restart_statuses

ROOT = Path(__file__).resolve().parents[2]


def prevented(text: str) -> list[int]:
    match = re.search(r"^RestartPreventExitStatus=(.*)$", text, re.MULTILINE)
    assert match is not None
    return sorted(int(code) for code in match.group(1).split())


def test_the_unit_file_prevents_the_restarts_the_code_lists() -> None:
    unit = (ROOT / "systemd" / "azwait.service").read_text()
    assert prevented(unit) == no_restart_statuses()


def test_detach_prevents_the_same_restarts() -> None:
    argv = service_args(["/usr/bin/azwait", "--", "/bin/true"], {})
    properties = "\n".join(arg.removeprefix("--property=") for arg in argv)
    assert prevented(properties) == no_restart_statuses()


def waits(unit: Path) -> bool:
    """A unit that runs azwait's wait (ExecStart= or ExecStartPre=), not ``azwait events``."""
    return any(re.match(r"ExecStart(Pre)?=\S*azwait(\s|$)", line) and " events" not in line
               for line in unit.read_text().splitlines())


UNITS = sorted(path for path in (ROOT / "systemd").rglob("*.service") if waits(path))


def test_every_unit_that_waits_is_found() -> None:
    names = {path.name for path in UNITS}
    assert {"azwait.service", "hpc-worker-pre.service", "hpc-worker-exec.service"} <= names


@pytest.mark.parametrize("unit", UNITS, ids=lambda path: path.name)
def test_every_unit_that_waits_prevents_the_same_restarts(unit: Path) -> None:
    """The example units a user copies keep the policy too, as they would not if
    they were written out by hand and a new exit status came."""
    assert prevented(unit.read_text()) == no_restart_statuses()


def test_what_only_a_person_can_fix_is_never_restarted() -> None:
    assert {2, 4, 6, 8, 9, 126, 127} <= set(no_restart_statuses())
    assert not {1, 3, 5} & set(no_restart_statuses())  # a bug, a timeout, IMDS: try again


def test_every_code_is_documented_once() -> None:
    codes = [code for code, _ in exit_codes()]
    assert len(codes) == len(set(codes))
    assert all(meaning for _, meaning in exit_codes())
    assert str(AzwaitError.exit_code) in codes


def test_only_the_engine_sleeps() -> None:
    """Every wait goes through engine.py: no sleep loop anywhere else in the agent."""
    agent = ROOT / "agent" / "azwait"
    sleepers = sorted(path.name for path in agent.glob("*.py")
                      if re.search(r"\bsleep\(", path.read_text()))
    assert sleepers == ["engine.py"]
