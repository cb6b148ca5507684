"""Contracts written once: the exit statuses no restart can fix, shared by the unit
file and --detach; every documented code has one type; only the engine sleeps; no
import cycles between the agent's modules."""

from __future__ import annotations

import ast
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


def imported(node: ast.AST) -> list[str]:
    """The names an import statement may take from the agent's package."""
    if isinstance(node, ast.Import):
        return [part for alias in node.names for part in alias.name.split(".")[1:2]
                if alias.name.split(".")[0] == "azwait"]
    if not isinstance(node, ast.ImportFrom):
        return []
    parts = (node.module or "").split(".")
    if node.level == 0 and parts[0] != "azwait":
        return []
    within = parts[1:2] if node.level == 0 else parts[:1] if node.module else []
    return within or [alias.name for alias in node.names]


def imports_within(agent: Path) -> dict[str, set[str]]:
    """Module -> the agent's modules it imports, at the top or inside a function."""
    modules = {path.stem for path in agent.glob("*.py")}
    return {name: {target for node in ast.walk(ast.parse((agent / f"{name}.py").read_text()))
                   for target in imported(node)} & modules
            for name in modules}


def cycle_in(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle, as the modules along it, or [] when there is none."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str]:
        if name in path:
            return [*path[path.index(name):], name]
        if name in done:
            return []
        for dependency in sorted(graph[name]):
            if found := visit(dependency, [*path, name]):
                return found
        done.add(name)
        return []

    for name in sorted(graph):
        if found := visit(name, []):
            return found
    return []


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": set()}) == []


def test_every_way_of_importing_within_the_package_is_seen() -> None:
    def targets(source: str) -> list[str]:
        return [name for node in ast.walk(ast.parse(source)) for name in imported(node)]

    assert targets("from . import clients, logs") == ["clients", "logs"]
    assert targets("from .engine import Done") == ["engine"]
    assert targets("from azwait.policy import WaitPolicy") == ["policy"]
    assert targets("from azwait import waiter") == ["waiter"]
    assert targets("import azwait.state") == ["state"]
    assert targets("import json\nfrom os import path") == []


def test_no_import_cycles_between_the_agents_modules() -> None:
    """Lazy imports count too: they keep the start light, not the layers apart."""
    graph = imports_within(ROOT / "agent" / "azwait")
    assert {"engine", "policy", "waiter"} <= graph.keys() and "policy" in graph["engine"]
    assert cycle_in(graph) == []
