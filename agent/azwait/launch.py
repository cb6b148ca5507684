"""Become the worker: exec in place, so it keeps azwait's PID (systemd's main PID)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from .errors import WorkerNotExecutable, WorkerNotFound


def findable(argv: Sequence[str], env: Mapping[str, str]) -> bool:
    command = argv[0]
    if os.sep in command:
        return os.path.exists(command)
    return shutil.which(command, path=env.get("PATH", os.defpath)) is not None


def check_executable(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Raise as exec would (127 not found, 126 not executable), without exec'ing."""
    command = argv[0]
    if os.sep not in command:
        if shutil.which(command, path=env.get("PATH", os.defpath)) is None:
            raise WorkerNotFound(f"worker command not found on PATH: {command}")
        return
    if not os.path.exists(command):
        raise WorkerNotFound(f"worker command not found: {command}")
    if os.path.isdir(command) or not os.access(command, os.X_OK):
        raise WorkerNotExecutable(f"worker command is not executable: {command}")


def exec_worker(argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    """Replace this process with ``argv`` (no shell); raise with 126/127 if impossible."""
    # Python ignores SIGPIPE and SIGXFSZ, and ignored signals survive exec: a worker
    # should get the default dispositions, as it would from systemd. (Caught ones,
    # SIGTERM, SIGINT, SIGHUP and the request timer's SIGALRM, are reset by exec.)
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(signum, signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], list(argv), dict(env))
    except FileNotFoundError:
        raise WorkerNotFound(f"worker command not found: {argv[0]}") from None
    except PermissionError:
        raise WorkerNotExecutable(f"worker command is not executable: {argv[0]}") from None
    except OSError as err:
        raise WorkerNotExecutable(f"cannot execute worker {argv[0]}: {err.strerror}") from None
