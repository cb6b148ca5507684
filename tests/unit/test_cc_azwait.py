"""The cloud-init module's handling of the azwait: section, without booting."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import ModuleType

import pytest

from azwait.config import read_env_file

SOURCE = Path(__file__).resolve().parents[2] / "cloud-init" / "cc_azwait.py"


@pytest.fixture(scope="module")
def cc() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cc_azwait", SOURCE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_meta_is_what_both_cloud_inits_need(cc: ModuleType) -> None:
    """meta has id, distros and a valid frequency, and the module has no schema attribute."""
    assert cc.meta["id"] == "cc_azwait" and cc.meta["distros"] == ["all"]
    assert cc.meta["frequency"] == "always"
    assert cc.meta["activate_by_schema_keys"] == ["azwait"]
    assert not hasattr(cc, "schema")


def test_valid_section(cc: ModuleType) -> None:
    """Lower-case keys without the prefix become AZWAIT_* settings; numbers are durations."""
    settings = cc.validate({"worker": "/opt/w --queue 'a b'", "timeout": 600,
                            "client_id": "abc", "on_failed": "wait", "INTERVAL": "10s"})
    assert settings == {"AZWAIT_WORKER": "/opt/w --queue 'a b'", "AZWAIT_TIMEOUT": "600",
                        "AZWAIT_CLIENT_ID": "abc", "AZWAIT_ON_FAILED": "wait",
                        "AZWAIT_INTERVAL": "10s"}


@pytest.mark.parametrize("section,named", [
    ({"workr": "/opt/w"}, "workr"),
    ({"worker": ["/opt/w", "-x"]}, "azwait.worker"),
    ({"worker": {"cmd": "/opt/w"}}, "azwait.worker"),
    ({"timeout": "soon"}, "AZWAIT_TIMEOUT"),
    ({"on_failed": True}, "azwait.on_failed"),
    ({"client_id": "a", "object_id": "b"}, "AZWAIT_CLIENT_ID"),
    (["worker"], "mapping"),
])
def test_bad_sections_name_the_key(cc: ModuleType, section: object, named: str) -> None:
    """Unknown keys, non-string values and bad values are refused, naming the key."""
    with pytest.raises(cc.SectionError) as caught:
        cc.validate(section)
    assert named in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("worker", [
    "/opt/w", "/opt/w --queue jobs", "/opt/w --name 'a b'", '/opt/w --name "a b"',
    "/opt/w --price=$5", "/opt/w #not-a-comment", "/opt/w it's",
])
def test_rendered_file_reads_back(cc: ModuleType, tmp_path: Path, worker: str) -> None:
    """What the module writes, azwait reads back to the same value."""
    path = tmp_path / "azwait"
    path.write_text(cc.render({"AZWAIT_WORKER": worker, "AZWAIT_TIMEOUT": "30m"}))
    assert read_env_file(path) == {"AZWAIT_WORKER": worker, "AZWAIT_TIMEOUT": "30m"}


def test_unquotable_value_is_refused(cc: ModuleType) -> None:
    """A value no quoting can carry for both readers is refused, not mangled."""
    with pytest.raises(cc.SectionError, match="AZWAIT_WORKER"):
        cc.render({"AZWAIT_WORKER": "/opt/w \"it's\""})


def test_bad_section_leaves_file_and_starts_nothing(cc: ModuleType, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A bad section: one warning naming the key; the previous file is untouched."""
    defaults = tmp_path / "azwait"
    defaults.write_text("AZWAIT_WORKER=/opt/previous\n")
    monkeypatch.setattr(cc, "DEFAULTS", str(defaults))
    monkeypatch.setattr(cc, "AZWAIT", str(tmp_path / "must-not-run"))
    with caplog.at_level(logging.WARNING):
        cc.handle("azwait", {"azwait": {"worker": "/opt/new", "timeout": "5x"}}, None, [])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "AZWAIT_TIMEOUT" in warnings[0].getMessage()
    assert defaults.read_text() == "AZWAIT_WORKER=/opt/previous\n"


def test_section_without_worker_writes_the_file(cc: ModuleType, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings without a worker are written; nothing is started."""
    defaults = tmp_path / "azwait"
    monkeypatch.setattr(cc, "DEFAULTS", str(defaults))
    cc.handle("azwait", {"azwait": {"timeout": "20m"}}, None, [])
    assert read_env_file(defaults) == {"AZWAIT_TIMEOUT": "20m"}


def test_no_section_is_a_no_op(cc: ModuleType, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an azwait: key the module touches nothing."""
    defaults = tmp_path / "azwait"
    monkeypatch.setattr(cc, "DEFAULTS", str(defaults))
    cc.handle("azwait", {"other": 1}, None, [])
    assert not defaults.exists()
