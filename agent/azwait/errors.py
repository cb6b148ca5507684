"""Every way azwait can end, as a type that carries its exit code.

One boundary (``cli.main``) turns these into a one-line message and the code;
nothing else calls ``sys.exit``.
"""

from __future__ import annotations


class AzwaitError(Exception):
    """Base of all expected failures; ``exit_code`` is the documented code."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(AzwaitError):
    """A bad command line or configuration value (names the key and value)."""

    exit_code = 2


class TimeoutExpired(AzwaitError):
    """Still not Succeeded when AZWAIT_TIMEOUT ran out."""

    exit_code = 3


class TerminalState(AzwaitError):
    """Failed, Canceled, Deleting, or the resource vanished after it was seen."""

    exit_code = 4


class NotAzure(AzwaitError):
    """IMDS stayed unreachable for the whole AZWAIT_IMDS_GRACE."""

    exit_code = 5


class IdentityError(AzwaitError):
    """No usable managed identity, or ARM kept refusing it (401/403)."""

    exit_code = 6


class NotDetachable(AzwaitError):
    """``--detach`` found no systemd (PID 1) to hand the wait to, or it refused."""

    exit_code = 7


class WorkerNotExecutable(AzwaitError):
    """COMMAND exists but cannot be executed."""

    exit_code = 126


class WorkerNotFound(AzwaitError):
    """COMMAND does not exist."""

    exit_code = 127


class Interrupted(BaseException):
    """SIGTERM/SIGINT arrived: stop at once and exit 128+N.

    A BaseException, like KeyboardInterrupt, so that no library's
    ``except Exception`` can swallow it mid-request.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
