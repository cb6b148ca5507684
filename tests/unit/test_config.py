"""Configuration: layers, validation, one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from azwait.config import KEYS, format_duration, load, parse_duration, read_env_file
from azwait.errors import ConfigError


def _load(tmp_path: Path, file_text: str = "", env: dict[str, str] | None = None,
          flags: dict[str, str] | None = None):
    path = tmp_path / "azwait"
    path.write_text(file_text)
    return load(flags or {}, env or {}, path)


@pytest.mark.parametrize("text,seconds", [
    ("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("0", 0), ("1.5m", 90), (" 5S ", 5),
    ("1h30m", 5400), ("2m30s", 150), ("1h 5s", 3605), ("1h0m", 3600),
])
def test_durations(text: str, seconds: float) -> None:
    """Durations accept bare seconds, s/m/h suffixes, and compounds largest unit first."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("seconds", [0, 0.5, 5, 59, 60, 90, 3600, 3605, 5400, 86400, 90061])
def test_durations_round_trip(seconds: float) -> None:
    """What azwait prints as a duration, it reads back as the same one."""
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "5x", "-1", "m", "1h30", "30m1h", "1m1m", "ten"])
def test_bad_durations(text: str) -> None:
    """Anything else is rejected rather than guessed."""
    with pytest.raises(ValueError):
        parse_duration(text)


def test_defaults(tmp_path: Path) -> None:
    """With nothing set, the documented defaults apply."""
    config = _load(tmp_path)
    assert config.timeout == 3600 and config.interval == 5
    assert config.identity_grace == 300 and config.rbac_grace == 600 and config.imds_grace == 120
    assert config.on_failed == "exit" and config.state_dir == "/var/lib/azwait"
    assert config.imds_endpoint == "http://169.254.169.254" and config.arm_endpoint is None
    assert config.identity is None and config.worker is None
    assert config.drain_events == ("Preempt", "Terminate")


def test_layers(tmp_path: Path) -> None:
    """Flags beat the environment, which beats the file, which beats the default."""
    config = _load(
        tmp_path,
        "AZWAIT_TIMEOUT=10m\nAZWAIT_INTERVAL=7s\nAZWAIT_ON_FAILED=wait\n",
        env={"AZWAIT_TIMEOUT": "20m", "AZWAIT_INTERVAL": "9s"},
        flags={"AZWAIT_TIMEOUT": "30m"},
    )
    assert config.timeout == 1800
    assert config.interval == 9
    assert config.on_failed == "wait"


def test_file_format(tmp_path: Path) -> None:
    """The file reads like systemd's EnvironmentFile=: comments, quotes, other keys."""
    values = _load(tmp_path, '# comment\n\n; also\nAZWAIT_WORKER="/opt/w --flag \'a b\'"\n'
                             "HTTPS_PROXY=http://proxy:3128\n")
    assert values.worker == ("/opt/w", "--flag", "a b")


def test_unknown_key_in_environment(tmp_path: Path) -> None:
    """An unknown AZWAIT_* variable is an error naming it."""
    with pytest.raises(ConfigError, match="AZWAIT_TIMOUT"):
        _load(tmp_path, env={"AZWAIT_TIMOUT": "5m"})


def test_unknown_key_in_file(tmp_path: Path) -> None:
    """An unknown AZWAIT_* line in the file is an error naming the key and the file."""
    with pytest.raises(ConfigError, match=r"AZWAIT_NOPE in .*azwait"):
        _load(tmp_path, "AZWAIT_NOPE=1\n")


def test_bad_line_in_file(tmp_path: Path) -> None:
    """A line that is not KEY=VALUE names the file and line number."""
    with pytest.raises(ConfigError, match=r":2: expected KEY=VALUE"):
        _load(tmp_path, "AZWAIT_TIMEOUT=1m\nnot a pair\n")


@pytest.mark.parametrize("env,key", [
    ({"AZWAIT_TIMEOUT": "soon"}, "AZWAIT_TIMEOUT='soon'"),
    ({"AZWAIT_INTERVAL": "0"}, "AZWAIT_INTERVAL='0'"),
    ({"AZWAIT_ON_FAILED": "retry"}, "AZWAIT_ON_FAILED='retry'"),
    ({"AZWAIT_LOG_FORMAT": "xml"}, "AZWAIT_LOG_FORMAT='xml'"),
    ({"AZWAIT_IMDS_ENDPOINT": "169.254.169.254"}, "AZWAIT_IMDS_ENDPOINT"),
    ({"AZWAIT_WORKER": "'unbalanced"}, "AZWAIT_WORKER"),
    ({"AZWAIT_DRAIN_EVENTS": "Preempt,Explode"}, "Explode"),
])
def test_bad_values_name_the_key(tmp_path: Path, env: dict[str, str], key: str) -> None:
    """A bad value is an error that names the key and the value."""
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, env=env)
    assert key in caught.value.message
    assert "\n" not in caught.value.message


def test_two_identity_selectors(tmp_path: Path) -> None:
    """Two user-assigned identity selectors at once are rejected."""
    with pytest.raises(ConfigError, match="AZWAIT_CLIENT_ID and AZWAIT_MSI_RES_ID"):
        _load(tmp_path, env={"AZWAIT_CLIENT_ID": "a", "AZWAIT_MSI_RES_ID": "/x"})


@pytest.mark.parametrize("key,param", [
    ("AZWAIT_CLIENT_ID", "client_id"), ("AZWAIT_OBJECT_ID", "object_id"),
    ("AZWAIT_MSI_RES_ID", "msi_res_id"),
])
def test_identity_selector(tmp_path: Path, key: str, param: str) -> None:
    """Each identity key maps to its IMDS token parameter."""
    assert _load(tmp_path, env={key: "abc"}).identity == (param, "abc")


def test_empty_worker(tmp_path: Path) -> None:
    """A worker key that holds no words is an error, not a silent no-op."""
    with pytest.raises(ConfigError, match="AZWAIT_WORKER"):
        _load(tmp_path, env={"AZWAIT_WORKER": "  ''"[0:2]})


def test_zero_means_no_limit(tmp_path: Path) -> None:
    """0 for the timeout and graces means unlimited."""
    config = _load(tmp_path, env={"AZWAIT_TIMEOUT": "0", "AZWAIT_RBAC_GRACE": "0"})
    assert config.limit("timeout") == float("inf")
    assert config.limit("rbac_grace") == float("inf")
    assert config.limit("interval") == 5


def test_describe_covers_every_key_of_its_verb(tmp_path: Path) -> None:
    """The start-up line shows every key that is set and that the verb reads, in the
    form it is written in: durations compound, 0 as "no limit", words as shell words."""
    config = _load(tmp_path, env={"AZWAIT_WORKER": "/bin/w -x", "AZWAIT_CLIENT_ID": "c1",
                                  "AZWAIT_DRAIN_COMMAND": "drain 'a b'",
                                  "AZWAIT_TIMEOUT": "90m", "AZWAIT_RBAC_GRACE": "0"})
    wait, events = config.describe(), config.describe("events")
    unset = {"object_id", "msi_res_id", "arm_endpoint"}
    assert set(wait) == {k.attr for k in KEYS if k.verb in (None, "wait")} - unset
    assert set(events) == {k.attr for k in KEYS if k.verb in (None, "events")} - unset
    assert wait["timeout"] == "1h30m" and wait["rbac_grace"] == "no limit"
    assert wait["worker"] == "/bin/w -x" and events["drain_command"] == "drain 'a b'"
    assert not any(name.startswith("drain_") for name in wait)


def test_missing_file_is_fine(tmp_path: Path) -> None:
    """No /etc/default/azwait is the normal case."""
    assert read_env_file(tmp_path / "absent") == {}
