"""Per-VM state: the Succeeded marker (fast path) and the lock (one poller per VM)."""

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

from .errors import TimeoutExpired

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
MARKER = "succeeded.json"
LOCK = "wait.lock"


def boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


class State:
    """Files under ``AZWAIT_STATE_DIR``; unusable (non-root run) means no fast path, no lock."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.usable = True
        try:
            self.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError:
            self.usable = False

    @property
    def marker_path(self) -> Path:
        return self.directory / MARKER

    def marker(self) -> Optional[dict[str, Any]]:
        try:
            data = json.loads(self.marker_path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def fresh(self, vm_id: Optional[str] = None) -> bool:
        """Succeeded already seen on this boot (and, when known, for this vmId).

        The boot id alone guards the no-network path: an image captured from this
        VM, or a redeployed one, always starts a new boot.
        """
        marker = self.marker()
        if not marker or not marker.get("bootId") or marker.get("bootId") != boot_id():
            return False
        return vm_id is None or marker.get("vmId") == vm_id

    def record(self, vm_id: str, resource_id: str) -> None:
        if not self.usable:
            return
        data = {"vmId": vm_id, "bootId": boot_id(), "resourceId": resource_id,
                "succeededAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        temporary = self.marker_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data) + "\n")
        os.replace(temporary, self.marker_path)

    @contextlib.contextmanager
    def lock(self, deadline: float, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> Iterator[bool]:
        """Hold the per-VM lock; yields whether another poller had it first."""
        if not self.usable:
            yield False
            return
        fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        waited = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as err:
                    if err.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                waited = True
                if clock() >= deadline:
                    raise TimeoutExpired("another azwait held the wait lock until AZWAIT_TIMEOUT")
                sleep(min(0.1, max(0.0, deadline - clock())))
            yield waited
        finally:
            os.close(fd)  # also released by exec: the descriptor is close-on-exec

    def clean(self) -> list[str]:
        removed = []
        for name in (MARKER, LOCK, MARKER.replace(".json", ".tmp")):
            path = self.directory / name
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(str(path))
        return removed
