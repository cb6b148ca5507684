"""What each Python package ships: azwait without the simulator, azwait-sim on its
own. Wheels are built as pip builds them, from clean copies of agent/ and sim/.
(The .deb's contents are checked by tests/deb/test_deb.sh.)"""

from __future__ import annotations

import email.parser
import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]


class Wheel(NamedTuple):
    path: Path
    log: str  # pip's and the build backend's output

    def names(self) -> list[str]:
        with zipfile.ZipFile(self.path) as archive:
            return archive.namelist()

    def read(self, name: str) -> str:
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(name).decode()

    def dist_info(self, name: str) -> str:
        return self.read(next(n for n in self.names() if n.endswith(f".dist-info/{name}")))

    def requirements(self) -> list[str]:
        metadata = email.parser.Parser().parsestr(self.dist_info("METADATA"))
        return metadata.get_all("Requires-Dist") or []


def build(project: str, work: Path) -> Wheel:
    # A copy, because pip builds in the tree: a build/ or *.egg-info left there
    # by an earlier build could carry stale files (an old azwait/sim/) into the wheel.
    source = work / "src" / project
    shutil.copytree(ROOT / project, source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "*.pyc"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps",
                           "--no-cache-dir", "--disable-pip-version-check",
                           "-w", str(work / "dist"), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return Wheel(next((work / "dist").glob("*.whl")), done.stdout + done.stderr)


@pytest.fixture(scope="module")
def agent_wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wheel]:
    yield build("agent", tmp_path_factory.mktemp("agent"))


@pytest.fixture(scope="module")
def sim_wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wheel]:
    yield build("sim", tmp_path_factory.mktemp("sim"))


@pytest.mark.parametrize("which", ["agent_wheel", "sim_wheel"])
def test_the_build_uses_current_license_metadata(which: str,
                                                 request: pytest.FixtureRequest) -> None:
    """Building prints no deprecation warning (setuptools stops accepting the old
    license table in 2027) and the wheel carries an SPDX License-Expression."""
    wheel: Wheel = request.getfixturevalue(which)
    assert "deprecat" not in wheel.log.lower()
    assert "License-Expression: MIT" in wheel.dist_info("METADATA")


def test_the_azwait_wheel_carries_no_simulator(agent_wheel: Wheel) -> None:
    """azwait's wheel: the agent's package alone, no fake Azure, no certificate
    generator, and nothing that needs cryptography directly."""
    names = agent_wheel.names()
    assert agent_wheel.path.name.startswith("azwait-")
    assert {name.split("/")[0] for name in names} == {
        "azwait", next(n.split("/")[0] for n in names if ".dist-info/" in n)}
    simulator = [name for name in names
                 if re.search(r"(^|/)(sim|azwait_sim)(/|\.py$)|(^|/)tls\.py$", name)]
    assert simulator == []
    assert {path.stem for path in (ROOT / "agent" / "azwait").glob("*.py")} == {
        Path(name).stem for name in names if name.startswith("azwait/") and name.endswith(".py")}
    assert not [req for req in agent_wheel.requirements() if req.startswith("cryptography")]
    importers = [name for name in names if name.endswith(".py") and re.search(
        r"^\s*(import|from)\s+cryptography\b", agent_wheel.read(name), re.MULTILINE)]
    assert importers == []
    assert "azwait-sim" not in agent_wheel.dist_info("entry_points.txt")


def test_the_azwait_sim_wheel_is_the_simulator_alone(sim_wheel: Wheel) -> None:
    names = sim_wheel.names()
    assert sim_wheel.path.name.startswith("azwait_sim-")
    assert {name.split("/")[0] for name in names} == {
        "azwait_sim", next(n.split("/")[0] for n in names if ".dist-info/" in n)}
    assert {path.stem for path in (ROOT / "sim" / "azwait_sim").glob("*.py")} == {
        Path(name).stem for name in names if name.endswith(".py")}
    assert [req.split(">")[0].strip() for req in sim_wheel.requirements()] == ["cryptography"]
    scripts = sim_wheel.dist_info("entry_points.txt")
    assert re.search(r"^azwait-sim = azwait_sim\.cli:main$", scripts, re.MULTILINE)


def test_azwait_sim_installs_and_runs_on_its_own(sim_wheel: Wheel, tmp_path: Path) -> None:
    """Its wheel in a fresh venv, with the dependencies it declares (at the pins of
    agent/requirements.lock, which the development venv uses) and nothing of azwait."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python, command = venv / "bin" / "python", venv / "bin" / "azwait-sim"
    pins = ROOT / "agent" / "requirements.lock"
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", "-c", str(pins), str(sim_wheel.path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]

    done = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("usage: azwait-sim "), done.stderr
    # A real start: the test CA needs cryptography, which only the declared
    # dependencies could have brought.
    done = subprocess.run([str(command), "--states", "Succeeded@0", "--duration", "0",
                           "--cert-dir", str(tmp_path / "certs")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ca"] == str(tmp_path / "certs" / "ca.pem")
    done = subprocess.run([str(python), "-c", "import azwait"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "No module named 'azwait'" in done.stderr
