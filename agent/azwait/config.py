"""Configuration: one validated, frozen object built in layers.

Layers, lowest first: built-in defaults < ``/etc/default/azwait`` < the process
environment < command-line options. Every key is declared once in ``KEYS``; the
command-line options, the validation and the start-up log line all come from it.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional

from .errors import ConfigError

PREFIX = "AZWAIT_"
DEFAULT_FILE = Path("/etc/default/azwait")
EVENT_TYPES = ("Freeze", "Reboot", "Redeploy", "Preempt", "Terminate")

_NUMBER = r"\d+(?:\.\d+)?"
_PART = re.compile(rf"({_NUMBER})([hms])")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}  # largest first, as they must be written
DURATION_FORMS = "90, 90s, 15m, 2h, 1h30m"


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``1.5m``, ``2h``, ``1h30m``, ``2m30s`` → seconds."""
    value = re.sub(r"\s+", "", text.lower())
    if re.fullmatch(_NUMBER, value):
        return float(value)
    parts = _PART.findall(value)
    units = [unit for _, unit in parts]
    if (not parts or "".join(n + u for n, u in parts) != value
            or units != sorted(set(units), key=list(_UNITS).index)):
        raise ValueError(f"expected a duration such as {DURATION_FORMS}")
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    """Seconds as the compound form ``parse_duration`` reads (``5400`` → ``1h30m``)."""
    if seconds != int(seconds) or seconds < 60:
        return f"{seconds:g}s"
    left, out = int(seconds), ""
    for unit, size in _UNITS.items():
        if left >= size:
            out += f"{left // int(size)}{unit}"
            left %= int(size)
    return out


def _duration(allow_zero: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        seconds = parse_duration(text)
        if seconds == 0 and not allow_zero:
            raise ValueError("must be greater than 0")
        return seconds

    return parse


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return value

    return parse


def _words(text: str) -> tuple[str, ...]:
    """Shell words, split without a shell (no expansion, no globbing)."""
    try:
        return tuple(shlex.split(text))
    except ValueError as err:
        raise ValueError(f"cannot split into words: {err}") from None


def _url(text: str) -> str:
    value = text.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
        raise ValueError("expected an http:// or https:// URL")
    return value


def _text(text: str) -> str:
    return text.strip()


def _event_types(text: str) -> tuple[str, ...]:
    by_lower = {name.lower(): name for name in EVENT_TYPES}
    chosen = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item.lower() not in by_lower:
            raise ValueError(f"unknown event type {item!r}; known: " + ",".join(EVENT_TYPES))
        chosen.append(by_lower[item.lower()])
    if not chosen:
        raise ValueError("no event types: give one or more of " + ",".join(EVENT_TYPES))
    return tuple(chosen)


@dataclasses.dataclass(frozen=True)
class Key:
    name: str  # without the prefix, e.g. "TIMEOUT"
    default: Optional[str]
    parse: Callable[[str], Any]
    help: str
    verb: Optional[str] = None  # the one verb that reads it ("events"), or every wait's

    @property
    def env(self) -> str:
        return PREFIX + self.name

    @property
    def attr(self) -> str:
        return self.name.lower()

    @property
    def flag(self) -> str:
        return "--" + self.name.lower().replace("_", "-")


KEYS: tuple[Key, ...] = (
    Key("TIMEOUT", "60m", _duration(True), "give up (exit 3) after this long; 0 = never"),
    Key("INTERVAL", "5s", _duration(False), "base time between ARM reads (jittered, stretched)"),
    Key("CLIENT_ID", None, _text, "user-assigned identity by client id"),
    Key("OBJECT_ID", None, _text, "user-assigned identity by object id"),
    Key("MSI_RES_ID", None, _text, "user-assigned identity by resource id"),
    Key("IDENTITY_GRACE", "5m", _duration(True), "retry 'Identity not found' this long"),
    Key("RBAC_GRACE", "10m", _duration(True), "retry ARM 401/403 this long"),
    Key("IMDS_GRACE", "2m", _duration(True), "retry an unreachable IMDS this long (then exit 5)"),
    Key("NETWORK_GRACE", "2m", _duration(True),
        "retry TLS verification and proxy failures this long (then exit 8)"),
    Key("ON_FAILED", "exit", _choice("exit", "wait"), "on Failed: exit 4, or keep waiting"),
    Key("STATE_DIR", "/var/lib/azwait", _text, "where the Succeeded marker and the lock live"),
    Key("LOG_FORMAT", "auto", _choice("auto", "console", "json"), "log line format"),
    Key("LOG_LEVEL", "info", _choice("debug", "info", "warning", "error"), "lowest level logged"),
    Key("IMDS_ENDPOINT", "http://169.254.169.254", _url, "IMDS base URL"),
    Key("ARM_ENDPOINT", None, _url, "ARM base URL (default: from IMDS azEnvironment)"),
    Key("WORKER", None, _words, "worker command line (shell words, no shell) if no -- COMMAND",
        "wait"),
    Key("DRAIN_COMMAND", None, _words, "events: command run for an event for this VM, "
        "if no -- DRAIN", "events"),
    Key("DRAIN_TIMEOUT", "60s", _duration(False), "events: longest a drain may run", "events"),
    Key("DRAIN_EVENTS", "Preempt,Terminate", _event_types, "events: types that trigger a drain",
        "events"),
)
_BY_ENV = {key.env: key for key in KEYS}
# Durations that read "0" as "no limit" rather than "none at all".
_UNLIMITED_WHEN_ZERO = ("timeout", "identity_grace", "rbac_grace", "imds_grace", "network_grace")


@dataclasses.dataclass(frozen=True)
class Config:
    timeout: float
    interval: float
    client_id: Optional[str]
    object_id: Optional[str]
    msi_res_id: Optional[str]
    identity_grace: float
    rbac_grace: float
    imds_grace: float
    network_grace: float
    on_failed: str
    state_dir: str
    log_format: str
    log_level: str
    imds_endpoint: str
    arm_endpoint: Optional[str]
    worker: Optional[tuple[str, ...]]
    drain_command: Optional[tuple[str, ...]]
    drain_timeout: float
    drain_events: tuple[str, ...]

    @property
    def identity(self) -> tuple[str, str] | None:
        """The user-assigned identity selector as (IMDS parameter, value), if any."""
        for param, value in (
            ("client_id", self.client_id),
            ("object_id", self.object_id),
            ("msi_res_id", self.msi_res_id),
        ):
            if value:
                return param, value
        return None

    def limit(self, name: str) -> float:
        """A duration in seconds where 0 means unlimited (returned as infinity)."""
        value: float = getattr(self, name)
        if name in _UNLIMITED_WHEN_ZERO and value == 0:
            return float("inf")
        return value

    def describe(self, verb: str = "wait") -> dict[str, str]:
        """The effective configuration for ``verb`` as logged at start, unset keys left
        out (nothing here is secret)."""
        out: dict[str, str] = {}
        for key in KEYS:
            value = getattr(self, key.attr)
            if value is None or key.verb not in (None, verb):
                continue
            if key.attr in _UNLIMITED_WHEN_ZERO and value == 0:
                value = "no limit"
            elif isinstance(value, float):
                value = format_duration(value)
            elif isinstance(value, tuple):
                value = shlex.join(value) if key.parse is _words else ",".join(value)
            out[key.attr] = value
        return out


def read_env_file(path: Path, required: bool = False) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (comments, quotes).

    A missing file is no settings, unless it was asked for by name (``required``).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError(f"configuration file {path} does not exist") from None
        return {}
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {path}: {err}") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE, got {raw.strip()!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def _azwait_keys(source: Mapping[str, str], where: str) -> dict[str, str]:
    picked = {}
    for name, value in source.items():
        if not name.startswith(PREFIX):
            continue  # the file may also carry e.g. HTTPS_PROXY for the units
        if name not in _BY_ENV:
            raise ConfigError(f"unknown configuration key {name} in {where}")
        picked[name] = value
    return picked


def load(
    flags: Mapping[str, Optional[str]],
    environ: Mapping[str, str],
    file: Optional[Path] = None,
) -> Config:
    """Merge the layers and validate every value; ``flags`` is keyed by env name.

    ``file`` is a file named by the user, which must exist; without one the
    optional ``DEFAULT_FILE`` is read.
    """
    raw: dict[str, tuple[str, str]] = {}  # env name -> (value, where it came from)
    for key in KEYS:
        if key.default is not None:
            raw[key.env] = (key.default, "default")
    path = file or DEFAULT_FILE
    for name, value in _azwait_keys(read_env_file(path, file is not None), str(path)).items():
        raw[name] = (value, str(path))
    for name, value in _azwait_keys(environ, "the environment").items():
        raw[name] = (value, "the environment")
    for name, flag in flags.items():
        if flag is not None:
            raw[name] = (flag, "the command line")

    fields: dict[str, Any] = {}
    for key in KEYS:
        value, where = raw.get(key.env, ("", "default"))
        if value == "" and key.default is None:
            fields[key.attr] = None
            continue
        try:
            fields[key.attr] = key.parse(value)
        except ValueError as err:
            raise ConfigError(f"{key.env}={value!r} (from {where}): {err}") from None
    config = Config(**fields)

    chosen = [k for k in ("CLIENT_ID", "OBJECT_ID", "MSI_RES_ID") if fields[k.lower()]]
    if len(chosen) > 1:
        names = " and ".join(PREFIX + k for k in chosen)
        raise ConfigError(f"{names} are both set: choose one user-assigned identity")
    if config.worker == ():
        raise ConfigError("AZWAIT_WORKER is set but holds no command")
    return config
