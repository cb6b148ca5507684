"""azwait: start the HPC worker once Azure says this VM is provisioned.

Reads the ``azwait:`` section of cloud-config — the azwait configuration keys in
lower case without the ``AZWAIT_`` prefix (``worker``, ``timeout``, ``interval``,
``client_id``, ``on_failed``, ...) — validates it with azwait's own rules, writes
``/etc/default/azwait`` and hands "wait, then start the worker" to systemd with
``azwait --detach``, every boot. It never waits itself: cloud-final has no
timeout, and the VM is not Succeeded until provisioning (which may wait for
cloud-init) is over.

Example (a drop-in written by user data's write_files, the documented default)::

    #cloud-config
    write_files:
      - path: /etc/cloud/cloud.cfg.d/99-azwait.cfg
        content: |
          azwait:
            worker: /usr/local/bin/worker --queue jobs
            timeout: 30m
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)
AZWAIT = "/usr/bin/azwait"
AZWAIT_LIB = "/usr/lib/azwait"  # where the package keeps the azwait Python package
DEFAULTS = "/etc/default/azwait"

meta = {
    "id": "cc_azwait",
    "distros": ["all"],
    "frequency": "always",  # every boot: the worker is started on each one
    "activate_by_schema_keys": ["azwait"],
}


class SectionError(ValueError):
    """The azwait: section is unusable; the message names the key."""


def _config_module() -> Any:
    if os.path.isdir(AZWAIT_LIB) and AZWAIT_LIB not in sys.path:
        sys.path.append(AZWAIT_LIB)
    from azwait import config  # stdlib-only module: no SDK is loaded into cloud-init

    return config


def validate(section: Any) -> dict[str, str]:
    """The section as AZWAIT_* settings, checked exactly as azwait checks them."""
    config = _config_module()
    if not isinstance(section, dict):
        raise SectionError(f"azwait: must be a mapping of keys, got {type(section).__name__}")
    known = {key.attr: key for key in config.KEYS}
    settings: dict[str, str] = {}
    for name, value in section.items():
        key = known.get(str(name).lower())
        if key is None:
            raise SectionError(f"azwait: unknown key {name!r}; known: {', '.join(sorted(known))}")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise SectionError(f"azwait.{name}: expected a string, got {type(value).__name__}")
        settings[key.env] = str(value)
    try:
        config.load(settings, {}, Path(os.devnull))
    except config.ConfigError as err:
        raise SectionError(f"azwait: {err.message}") from None
    return settings


def _quote(name: str, value: str) -> str:
    """One KEY=VALUE line that systemd's EnvironmentFile= and azwait read alike."""
    if "\n" in value:
        raise SectionError(f"azwait: {name} spans several lines")
    if value and not any(c in value for c in " \t'\"\\#;$`"):
        return f"{name}={value}"
    if "'" not in value:
        return f"{name}='{value}'"
    if not any(c in value for c in '"\\$`'):
        return f'{name}="{value}"'
    raise SectionError(f"azwait: {name} mixes quote characters; simplify the value")


def render(settings: Mapping[str, str]) -> str:
    lines = ["# Written by cloud-init (cc_azwait) from the azwait: section of cloud-config,",
             "# on every boot: change the cloud-config, not this file.", "#",
             "# Every key and its default: man 8 azwait."]
    lines += [_quote(name, value) for name, value in sorted(settings.items())]
    return "\n".join(lines) + "\n"


def write_defaults(text: str) -> None:
    path = DEFAULTS
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".azwait.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _handle(name: str, cfg: Mapping[str, Any], cloud: Any, args: Any) -> None:
    if "azwait" not in cfg:
        LOG.debug("Skipping module named %s, no 'azwait' key in configuration", name)
        return
    try:
        settings = validate(cfg["azwait"])
        text = render(settings)
    except SectionError as err:
        LOG.warning("%s; %s left as it was, no worker started", err, DEFAULTS)
        return
    write_defaults(text)
    if "AZWAIT_WORKER" not in settings:
        LOG.info("azwait: no worker in the azwait: section; %s written, nothing to start",
                 DEFAULTS)
        return
    done = subprocess.run([AZWAIT, "--detach"], capture_output=True, text=True, timeout=30,
                          check=False)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        LOG.warning("azwait --detach exited %d: %s", done.returncode, reason)
        return
    LOG.info("azwait: worker handed to azwait-detached.service (journalctl -u "
             "azwait-detached.service)")


def _takes_log() -> bool:
    """cloud-init before 23.2 passes a logger as the fourth argument."""
    try:
        from cloudinit import version
    except ImportError:
        return False
    major, minor = (int(part) for part in version.version_string().split(".")[:2])
    return (major, minor) < (23, 2)


if _takes_log():

    def handle(name: str, cfg: Any, cloud: Any, log: Any, args: Any) -> None:
        _handle(name, cfg, cloud, args)

else:
    # From 23.2 a handle() with a log parameter is reported as DEPRECATED.
    handle = _handle
