"""Per-VM state: the Succeeded marker (fast path) and the lock (one poller per VM).

Both are optional. A state directory azwait cannot write (a non-root run on a
VM where root's azwait.service made it 0700) costs the fast path and the lock,
never the worker: the wait goes ahead and a warning says why.

A marker vouches only for what it saw: this boot, this IMDS endpoint, and this
ARM endpoint (the override, or the one its cloud implies).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

from .clouds import CLOUDS
from .engine import Done, Engine, NotYet, Step
from .errors import ConfigError, TimeoutExpired

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
MARKER = "succeeded.json"
LOCK = "wait.lock"
LOCK_POLL = 0.1  # seconds between tries of a lock another azwait holds

Marker = dict[str, Any]


def boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def mismatch(marker: Marker, imds_endpoint: str, arm_endpoint: Optional[str]) -> Optional[str]:
    """Why ``marker`` does not vouch for a wait with these endpoints (None: it does)."""
    if not marker.get("bootId") or marker.get("bootId") != boot_id():
        return "from another boot"
    if not marker.get("resourceId"):
        return "names no resource"
    if marker.get("imdsEndpoint") != imds_endpoint:
        return f"seen through IMDS {marker.get('imdsEndpoint')}, not {imds_endpoint}"
    # Without an override the cloud names the endpoint; the same IMDS on the same
    # boot reports the same cloud.
    expected = arm_endpoint or CLOUDS.get(str(marker.get("cloud", "")).lower())
    if marker.get("armEndpoint") != expected:
        return f"seen through ARM {marker.get('armEndpoint')}, not {expected or 'this cloud'}"
    return None


class State:
    """Files under ``AZWAIT_STATE_DIR``. ``warn`` hears why one cannot be used."""

    def __init__(self, directory: str, warn: Callable[[str], None] = lambda _: None) -> None:
        self.directory = Path(directory)
        self._warn = warn
        self._unwritable = False

    @property
    def marker_path(self) -> Path:
        return self.directory / MARKER

    def marker(self) -> Optional[Marker]:
        try:
            data = json.loads(self.marker_path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def vouching(self, imds_endpoint: str, arm_endpoint: Optional[str]) -> Optional[Marker]:
        """The marker, if it says Succeeded for this boot and these endpoints."""
        marker = self.marker()
        if marker is None or mismatch(marker, imds_endpoint, arm_endpoint) is not None:
            return None
        return marker

    def record(self, **facts: str) -> None:
        """Write the marker (``facts``: vmId, resourceId, cloud, imdsEndpoint, armEndpoint)."""
        if self._unwritable:
            return  # already said so when the lock could not be taken
        data = {**facts, "bootId": boot_id(),
                "succeededAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        temporary = self.marker_path.with_suffix(".tmp")
        try:
            self.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
            temporary.write_text(json.dumps(data) + "\n")
            os.replace(temporary, self.marker_path)
        except OSError as err:
            self._cannot("write the Succeeded marker", err,
                         "the next run on this boot reads ARM again")

    @contextlib.contextmanager
    def lock(self, engine: Engine) -> Iterator[bool]:
        """Hold the per-VM lock, waiting for it within ``engine``'s deadline; yields
        whether another poller had it first. Released when the block ends, before
        the worker starts."""
        try:
            self.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
            fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            self._unwritable = True
            self._cannot("take the wait lock", err,
                         "waiting without the lock and the Succeeded marker")
            yield False
            return
        waited = False

        def take(_: float) -> Step[None]:
            nonlocal waited
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    # e.g. ENOLCK on NFS
                    self._cannot("take the wait lock", err, "waiting without it")
                    return Done(None)
                waited = True
                return NotYet(LOCK_POLL)
            return Done(None)

        try:
            engine.bare().run(take, lambda: TimeoutExpired(
                "another azwait held the wait lock until AZWAIT_TIMEOUT"))
            yield waited
        finally:
            os.close(fd)

    def _cannot(self, what: str, err: OSError, consequence: str) -> None:
        self._warn(f"cannot {what} in {self.directory} ({err.strerror or err}): {consequence}")

    def clean(self) -> list[str]:
        removed = []
        for name in (MARKER, LOCK, MARKER.replace(".json", ".tmp")):
            path = self.directory / name
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as err:
                # Usually a user other than root on the 0700 state directory.
                raise ConfigError(f"azwait clean cannot remove {path} "
                                  f"({err.strerror or err}): it needs write access to "
                                  "AZWAIT_STATE_DIR (run it as root)") from None
            removed.append(str(path))
        return removed
