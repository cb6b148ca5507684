"""Every way azwait can end, as a type that carries its exit code.

One boundary (``cli.main``) turns these into a one-line message and the code;
nothing else calls ``sys.exit``.
"""

from __future__ import annotations


class AzwaitError(Exception):
    """Base of all expected failures; ``exit_code`` is the documented code and
    ``meaning`` its line in the exit-code tables (--help, README, man page)."""

    exit_code = 1
    meaning = "unexpected internal error (a bug)"
    # Whether a supervisor's restart can help: False for what only a person can fix.
    restart_helps = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(AzwaitError):
    """A bad command line or configuration value (names the key and value), or a state
    file ``azwait clean`` cannot remove (names the file)."""

    exit_code = 2
    meaning = "bad command line or configuration value; clean: a state file it cannot remove"
    restart_helps = False


class TimeoutExpired(AzwaitError):
    """Still not Succeeded when AZWAIT_TIMEOUT ran out."""

    exit_code = 3
    meaning = "timeout: still not Succeeded when AZWAIT_TIMEOUT ran out (status: not Succeeded yet)"


class TerminalState(AzwaitError):
    """Failed, Canceled, Deleting, or the resource vanished after it was seen."""

    exit_code = 4
    meaning = "terminal state: Failed, Canceled, Deleting, or the VM vanished"
    restart_helps = False


class NotAzure(AzwaitError):
    """IMDS stayed unreachable for the whole AZWAIT_IMDS_GRACE."""

    exit_code = 5
    meaning = "not an Azure VM: IMDS unreachable for AZWAIT_IMDS_GRACE"


class IdentityError(AzwaitError):
    """No usable managed identity, or ARM kept refusing it (401/403)."""

    exit_code = 6
    meaning = "no managed identity, or ARM 401/403 after AZWAIT_RBAC_GRACE"
    restart_helps = False


class NotDetachable(AzwaitError):
    """``--detach`` found no systemd (PID 1) to hand the wait to, or it refused or did
    not answer."""

    exit_code = 7
    meaning = ("--detach: no systemd as PID 1 to hand the wait to (or it refused, or did "
               "not answer)")
    restart_helps = False


class NetworkPathError(AzwaitError):
    """ARM's certificate is not trusted, or the proxy in the way fails: configuration
    that does not heal by itself, after AZWAIT_NETWORK_GRACE."""

    exit_code = 8
    meaning = "TLS verification or proxy failure on the way to ARM after AZWAIT_NETWORK_GRACE"
    restart_helps = False


class ArmRejected(AzwaitError):
    """ARM refused the read with a 4xx that waiting does not change (not 401, 403,
    404, 408 or 429): the request itself is wrong."""

    exit_code = 9
    meaning = "ARM rejected the read with another 4xx (e.g. a malformed resource ID)"
    restart_helps = False


class WorkerNotExecutable(AzwaitError):
    """COMMAND exists but cannot be executed."""

    exit_code = 126
    meaning = "COMMAND not executable"
    restart_helps = False


class WorkerNotFound(AzwaitError):
    """COMMAND does not exist."""

    exit_code = 127
    meaning = "COMMAND not found"
    restart_helps = False


class Interrupted(BaseException):
    """SIGTERM, SIGINT or SIGHUP arrived: stop at once and exit 128+N.

    A BaseException, like KeyboardInterrupt, so that no library's
    ``except Exception`` can swallow it mid-request.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def exit_codes() -> list[tuple[str, str]]:
    """Every documented exit status and its meaning, in order. --help prints this
    table; the README's and the man page's say more in prose, and a test holds their
    codes to it (tests/integration/test_contract.py)."""
    errors = sorted({cls.exit_code: cls for cls in _subclasses(AzwaitError)}.items())
    return [("0", "VM is Succeeded (worker exec'd, or nothing to exec; events: stopped "
                  "by SIGTERM)"),
            ("1", AzwaitError.meaning),
            *((str(code), cls.meaning) for code, cls in errors),
            ("128+N", "stopped by signal N (SIGTERM: 143)")]


def _subclasses(cls: type) -> list[type[AzwaitError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def no_restart_statuses() -> list[int]:
    """Exit statuses a restart cannot fix: azwait.service's RestartPreventExitStatus=
    and --detach's, from this one list."""
    return sorted({cls.exit_code for cls in _subclasses(AzwaitError) if not cls.restart_helps})
