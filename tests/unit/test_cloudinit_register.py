"""cloud-init-register against cloud-init's own code and cloud.cfg, as Debian ships them.

For cloud-init 22.4 (bookworm) and 25.1 (trixie), cloud.cfg is rendered from each
source package's own template for the ubuntu, debian, rhel and unknown variants
(tests/cloudinit/fixtures.sh). The effective final-stage list is asked of that
cloud-init's own reader (util.read_conf_with_confd, what fetch_base_config uses),
run by the Python that suite ships; cloud-init-register runs the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Optional

import pytest

TOP = Path(__file__).resolve().parents[2]
FIXTURES = TOP / "build" / "cloud-init"
REGISTER = TOP / "cloud-init" / "register.py"
DROP_IN = "99_zz_azwait_final_modules.cfg"
SUITES = ("bookworm", "trixie")
VARIANTS = ("ubuntu", "debian", "rhel", "unknown")
EFFECTIVE = (
    "import json, sys\n"
    "from cloudinit import util\n"
    "print(json.dumps(util.read_conf_with_confd(sys.argv[1]).get('cloud_final_modules')))\n"
)


def fixture(suite: str) -> Path:
    path = FIXTURES / suite
    if not (path / "complete").exists():
        pytest.fail(f"no cloud-init fixtures in {path}: run tests/cloudinit/fixtures.sh "
                    "(make unit does)")
    return path


def cloud_init(suite: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run Python code or a script as the suite's cloud-init would see it."""
    source = fixture(suite)
    env = dict(os.environ, PYTHONPATH=str(source / "src"))
    return subprocess.run([str(source / "venv/bin/python"), *argv], env=env, text=True,
                          capture_output=True, check=False, timeout=120)


def effective(suite: str, root: Path) -> Optional[list[Any]]:
    done = cloud_init(suite, "-c", EFFECTIVE, str(root / "etc/cloud/cloud.cfg"))
    assert done.returncode == 0, done.stderr
    modules: Optional[list[Any]] = json.loads(done.stdout)
    return modules


def register(suite: str, root: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return cloud_init(suite, str(REGISTER), "--root", str(root), *flags)


def name(entry: Any) -> str:
    entry = entry[0] if isinstance(entry, list) else entry
    return str(entry).replace("-", "_")


def plus_azwait(modules: list[Any]) -> list[Any]:
    """What the distro's list must become: azwait right after scripts_user."""
    at = max(i for i, entry in enumerate(modules) if name(entry) == "scripts_user") + 1
    return [*modules[:at], "azwait", *modules[at:]]


def install_cloud_init(root: Path, suite: str, variant: str) -> None:
    """/etc/cloud as the cloud-init package lays it out, cloud.cfg from ``variant``."""
    source = fixture(suite)
    confd = root / "etc/cloud/cloud.cfg.d"
    confd.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "rendered" / f"{variant}.cfg", root / "etc/cloud/cloud.cfg")
    shutil.copy(source / "src/config/cloud.cfg.d/05_logging.cfg", confd)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("suite", SUITES)
def test_install_adds_azwait_to_the_distros_own_list_and_purge_restores_it(
        tmp_path: Path, suite: str, variant: str) -> None:
    """After install, the effective list is the variant's own, in its order, with azwait
    after scripts_user; after purge it is the variant's own again, unchanged."""
    install_cloud_init(tmp_path, suite, variant)
    theirs = effective(suite, tmp_path)
    assert theirs and "scripts_user" in map(name, theirs)
    done = register(suite, tmp_path)
    assert done.returncode == 0 and not done.stderr, done.stderr
    assert effective(suite, tmp_path) == plus_azwait(theirs)
    assert register(suite, tmp_path, "--check").returncode == 0
    assert register(suite, tmp_path, "--remove").returncode == 0
    assert not (tmp_path / "etc/cloud/cloud.cfg.d" / DROP_IN).exists()
    assert effective(suite, tmp_path) == theirs


def test_the_ubuntu_variant_keeps_ubuntu_drivers_and_ansible(tmp_path: Path) -> None:
    """The defect this replaces: Ubuntu's list has ubuntu_drivers (NVIDIA drivers on GPU
    HPC nodes) and ansible, which a fixed Debian list dropped."""
    install_cloud_init(tmp_path, "trixie", "ubuntu")
    register("trixie", tmp_path)
    names = list(map(name, effective("trixie", tmp_path) or []))
    assert {"ubuntu_drivers", "ansible", "azwait"} <= set(names)


@pytest.mark.parametrize("variant", VARIANTS)
def test_an_upgrade_of_cloud_init_rebuilds_the_list(tmp_path: Path, variant: str) -> None:
    """Registered on 22.4's cloud.cfg, then cloud-init becomes 25.1 (its cloud.cfg, its
    module names): the trigger's run builds the list from the new one."""
    fresh = tmp_path / "fresh"
    install_cloud_init(fresh, "trixie", variant)
    wanted = plus_azwait(effective("trixie", fresh) or [])
    upgraded = tmp_path / "upgraded"
    install_cloud_init(upgraded, "bookworm", variant)
    register("bookworm", upgraded)
    install_cloud_init(upgraded, "trixie", variant)
    assert effective("trixie", upgraded) != wanted  # 22.4's list is still the one in force
    register("trixie", upgraded)
    assert effective("trixie", upgraded) == wanted


@pytest.mark.parametrize("suite", SUITES)
def test_another_drop_in_that_sets_the_list_is_respected(tmp_path: Path, suite: str) -> None:
    """An installer's or admin's cloud.cfg.d file that replaces the list (the greatest
    name wins, as in cloud-init) is the list azwait joins; a lesser one is not."""
    install_cloud_init(tmp_path, suite, "debian")
    confd = tmp_path / "etc/cloud/cloud.cfg.d"
    (confd / "10_early.cfg").write_text("cloud_final_modules: [early_only]\n")
    (confd / "90_site.cfg").write_text(
        "cloud_final_modules:\n - site_first\n - [scripts-user, always]\n - site_last\n")
    register(suite, tmp_path)
    assert effective(suite, tmp_path) == ["site_first", ["scripts-user", "always"], "azwait",
                                          "site_last"]


@pytest.mark.parametrize("suite", SUITES)
def test_a_file_that_overrides_azwaits_says_so(tmp_path: Path, suite: str) -> None:
    """A file sorting after azwait's own replaces its list: registering warns, and
    --check fails, rather than pretending."""
    install_cloud_init(tmp_path, suite, "debian")
    (tmp_path / "etc/cloud/cloud.cfg.d/zzz_last.cfg").write_text(
        "cloud_final_modules: [scripts_user]\n")
    done = register(suite, tmp_path)
    assert done.returncode == 0 and "warning" in done.stderr
    assert register(suite, tmp_path, "--check").returncode == 1


def test_without_cloud_init_nothing_is_written_and_a_stale_list_goes(tmp_path: Path) -> None:
    """No /etc/cloud/cloud.cfg (cloud-init not installed, or removed): no drop-in."""
    confd = tmp_path / "etc/cloud/cloud.cfg.d"
    confd.mkdir(parents=True)
    (confd / DROP_IN).write_text("cloud_final_modules: [azwait]\n")
    assert register("trixie", tmp_path, "--check").returncode == 1
    assert (confd / DROP_IN).exists()  # a check changes nothing
    assert register("trixie", tmp_path).returncode == 0
    assert not (confd / DROP_IN).exists()


def test_registering_twice_changes_nothing(tmp_path: Path) -> None:
    """A trigger that fires again finds azwait's own list and leaves it as it was."""
    install_cloud_init(tmp_path, "trixie", "rhel")
    register("trixie", tmp_path)
    first = (tmp_path / "etc/cloud/cloud.cfg.d" / DROP_IN).read_text()
    register("trixie", tmp_path)
    assert (tmp_path / "etc/cloud/cloud.cfg.d" / DROP_IN).read_text() == first
