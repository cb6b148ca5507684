"""The documentation is part of the contract: README, man page and --help agree with
the program on every key, option, exit code and duration format, and their
examples run as written."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from azwait.config import DURATION_FORMS, KEYS
from azwait.errors import exit_codes

from .conftest import AZWAIT

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
MAN_SOURCE = (ROOT / "debian" / "azwait.8").read_text()
CODES = [code for code, _ in exit_codes()]


def help_text() -> str:
    done = subprocess.run([AZWAIT, "--help"], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0
    return done.stdout


def man_text() -> str:
    """The man page as man renders it (roff escapes resolved), or its source unescaped."""
    if shutil.which("man"):
        done = subprocess.run(["man", "-l", str(ROOT / "debian" / "azwait.8")],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "MANWIDTH": "200", "MAN_KEEP_FORMATTING": "0"})
        if done.returncode == 0:
            return re.sub(r".\x08", "", done.stdout)
    return MAN_SOURCE.replace("\\-", "-").replace("\\e", "\\")


def section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end, text.index(start))]


def test_exit_codes_agree_everywhere() -> None:
    """--help, the README table and the man page list exactly the program's codes."""
    in_help = re.findall(r"^  (\d+(?:\+N)?) ", section(help_text(), "exit codes:", "\n\n"),
                         re.MULTILINE)
    assert in_help == CODES
    table = section(README, "## Exit codes", "\n## ")
    in_readme = []
    for cell in re.findall(r"^\| ([^|]+) \|", table, re.MULTILINE)[1:]:
        in_readme += [code.strip() for code in cell.split("/")]
    assert in_readme == CODES
    man = section(MAN_SOURCE, ".SH EXIT STATUS", ".SH FILES")
    in_man: list[str] = []
    for item in re.findall(r"^\.TP\n\.\w+ (.*)$", man, re.MULTILINE):
        words = item.replace('"', " ").replace(",", " ").split()
        in_man += ["128+N"] if words == ["128+", "N"] else words
    assert in_man == CODES


def test_every_key_and_option_is_documented() -> None:
    text = help_text()
    readme_keys = set(re.findall(r"^\| `(AZWAIT_[A-Z_]+)` \|",
                                 section(README, "## Configuration", "\n## "), re.MULTILINE))
    man = section(man_text(), "CONFIGURATION", "EXIT STATUS")
    man_options = section(man_text(), "OPTIONS", "CONFIGURATION")
    for key in KEYS:
        assert key.env in readme_keys, key.env
        assert key.env in man, key.env
        assert key.flag in text, key.flag
        assert key.flag in man_options, key.flag
    assert readme_keys == {key.env for key in KEYS}
    for option in ("--config", "--detach", "--json", "--version", "--help"):
        assert option in text and option in man_options


def test_duration_format_agrees_everywhere() -> None:
    forms = [form.strip() for form in DURATION_FORMS.split(",")]
    help_line = " ".join(help_text().split())
    assert f"Durations: {DURATION_FORMS}" in help_line
    readme = section(README, "## Configuration", "\n## ")
    man = " ".join(section(man_text(), "CONFIGURATION", "EXIT STATUS").split())
    for form in forms:
        assert f"`{form}`" in readme and form in man


def modules_of(package: Path) -> set[str]:
    return {path.stem for path in package.glob("*.py") if not path.stem.startswith("__")}


def test_readme_layout_lists_every_module() -> None:
    """The agent's table lists exactly azwait's modules; the simulator's, azwait_sim's."""
    def listed(text: str) -> set[str]:
        return set(re.findall(r"^\| `(\w+)` \|", text, re.MULTILINE))

    assert listed(section(README, "Layout:", "\n`sim/`")) == modules_of(ROOT / "agent" / "azwait")
    assert listed(section(README, "\n`sim/`", "\n#")) == modules_of(ROOT / "sim" / "azwait_sim")


def test_every_simulator_option_is_in_its_man_page() -> None:
    """azwait-sim --help and azwait-sim(1) list the same options."""
    done = subprocess.run([sys.executable, "-m", "azwait_sim", "--help"], capture_output=True,
                          text=True, timeout=30, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    man = (ROOT / "debian" / "azwait-sim.1").read_text()
    man = re.sub(r"\\f[BIRP]", "", man).replace("\\-", "-")  # roff font changes, dashes
    options = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
    in_help = set(options.findall(done.stdout))
    assert {"--help", "--version", "--states", "--no-tls"} <= in_help
    described = set(options.findall(section(man, ".SH OPTIONS", ".SH EXIT STATUS")))
    assert described == in_help - {"--help", "--version"}
    synopsis = set(options.findall(section(man, ".SH SYNOPSIS", ".SH DESCRIPTION")))
    assert {"--help", "--version"} <= synopsis


def test_quick_start_names_a_root_free_check_and_what_test_needs() -> None:
    quick = section(README, "## Quick start", "\n## ")
    assert "make check" in quick and ".venv/bin/azwait" in quick
    for need in ("root", "apt", "mmdebstrap", "systemd-nspawn"):
        assert need in quick
    makefile = (ROOT / "Makefile").read_text()
    check = re.search(r"^check: (.*?) ##", makefile, re.MULTILINE)
    assert check is not None
    assert set(check.group(1).split()) == {"lint", "unit", "integration"}
    assert re.search(r"^test: check ", makefile, re.MULTILINE)


def roff_example(after: str) -> str:
    """The .EX block that follows ``after`` in the man page, as a shell would read it."""
    start = MAN_SOURCE.index(".EX", MAN_SOURCE.index(after))
    block = MAN_SOURCE[start + 4:MAN_SOURCE.index(".EE", start)]
    return block.replace("\\-", "-").replace("\\e", "\\")


# The example names fixed ports and /tmp paths: run it in namespaces of its own (a
# user namespace mapping this user to root, so no privilege is needed), where
# nothing else running on this machine can share them.
PRIVATE = ("ip link set lo up && for d in /tmp/azwait-sim /tmp/azwait-state; do "
           "mkdir -p $d && mount -t tmpfs none $d; done && exec bash -c \"$1\"")


def private_namespaces() -> bool:
    return shutil.which("ip") is not None and subprocess.run(
        ["unshare", "-rnm", "true"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not private_namespaces(), reason="needs unshare -rnm and ip")
def test_man_page_simulator_example_works_as_written(tmp_path: Path) -> None:
    """The man page's try-it-without-Azure example, run by a shell as printed."""
    script = roff_example("Try it without Azure")
    assert "azwait-sim " in script and "azwait status" in script
    env = {key: value for key, value in os.environ.items() if not key.startswith("AZWAIT_")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.pop("REQUESTS_CA_BUNDLE", None)
    # Output to files, not pipes: the backgrounded simulator would hold a pipe open
    # for its whole --duration. Its namespaces end with it.
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as stdout_file, err.open("w") as stderr_file:
        proc = subprocess.Popen(["unshare", "-rnm", "--kill-child", "sh", "-c", PRIVATE, "sh",
                                 script], env=env, cwd=tmp_path, stdout=stdout_file,
                                stderr=stderr_file, start_new_session=True)
        try:
            proc.wait(timeout=90)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    stdout, stderr = out.read_text(), err.read_text()
    assert proc.returncode == 0, stderr
    assert re.search(r"^state: +Creating$", stdout, re.MULTILINE), stdout
    assert stdout.rstrip().endswith("worker started"), stdout
