"""The one entry point, and the one place that turns errors into exit codes."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, Optional

from . import __version__, logs
from .config import DEFAULT_FILE, DURATION_FORMS, KEYS, Config, load
from .errors import AzwaitError, ConfigError, Interrupted, exit_codes

# The agent's start, on the clock every wait runs on: AZWAIT_TIMEOUT and the start
# offset count from here, so the time spent loading is inside them, not added to them.
STARTED = time.monotonic()

USAGE = """\
azwait [OPTIONS] [-- COMMAND [ARG...]]  wait for Succeeded; then exec COMMAND, or exit 0
       azwait --detach [OPTIONS] -- COMMAND... hand wait+exec to systemd; return at once
       azwait events [OPTIONS] [-- DRAIN...]   watch Scheduled Events; drain, then approve
       azwait status [--json]                  one look: resource, cloud, identity, state
       azwait clean                            forget per-VM state (last step of an image build)"""

VERBS = ("status", "clean", "events")
# The simulator was once a verb; it is a package of its own so that production
# VMs carry no fake Azure and no certificate generator.
SIM_MOVED = ("the simulator is not part of azwait: it is the separate azwait-sim command "
             "(package azwait-sim, never for production VMs); see azwait-sim --help")


def _epilog() -> str:
    width = max(len(code) for code, _ in exit_codes()) + 2
    codes = "\n".join(f"  {code:<{width}}{meaning}" for code, meaning in exit_codes())
    return (f"exit codes:\n{codes}\n\n"
            "Every configuration key is also an option and an AZWAIT_* environment variable,\n"
            f"and a line in {DEFAULT_FILE} (command line > environment > file > default).\n"
            f"Durations: {DURATION_FORMS}. COMMAND is run without a shell.")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="azwait", usage=USAGE, epilog=_epilog(),
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Hold a worker back until Azure Resource Manager says this VM "
                                 "is provisioned (provisioningState Succeeded).")
    parser.add_argument("words", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"azwait {__version__}")
    parser.add_argument("--json", action="store_true", help="status: print JSON")
    parser.add_argument("--detach", action="store_true",
                        help="hand the wait and COMMAND to a transient systemd service "
                             "(azwait-detached.service) and return at once")
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help=f"KEY=VALUE file to read, which must exist "
                             f"(default {DEFAULT_FILE}, if it exists)")
    keys = parser.add_argument_group("configuration (each also AZWAIT_<NAME>)")
    for key in KEYS:
        default = f" (default {key.default})" if key.default else ""
        keys.add_argument(key.flag, dest=key.env, metavar="VALUE", help=key.help + default)
    return parser


def _verb(words: Sequence[str]) -> Optional[str]:
    """The verb, if any; a stray word is most likely a COMMAND missing its ``--``."""
    if not words:
        return None
    if words[0] == "sim":
        raise ConfigError(SIM_MOVED)
    if words[0] not in VERBS:
        raise ConfigError(f"unexpected word {words[0]!r}: a command to run goes after --, as "
                          f"in 'azwait -- {shlex.join(words)}'; the verbs are {', '.join(VERBS)}")
    if len(words) > 1:
        raise ConfigError(f"unexpected word {words[1]!r} after azwait {words[0]}"
                          + (": a drain command goes after --" if words[0] == "events" else ""))
    return words[0]


def _split_command(argv: Sequence[str]) -> tuple[list[str], Optional[list[str]]]:
    if "--" not in argv:
        return list(argv), None
    at = list(argv).index("--")
    command = list(argv[at + 1:])
    if not command:
        raise ConfigError("no COMMAND after --")
    return list(argv[:at]), command


def _on_signal(signum: int, _: Optional[FrameType]) -> None:
    raise Interrupted(signum)


def _wait(config: Config, command: Optional[Sequence[str]]) -> int:
    from .launch import exec_worker, findable
    from .notify import Notifier
    from .state import State

    log = logs.get()
    worker_env = dict(os.environ)
    command = command or config.worker
    settings = config.describe()
    if command:
        settings["worker"] = shlex.join(command)
    log.info("azwait starting", version=__version__, **settings)
    if command and not findable(command, worker_env):
        log.warning("worker command not found yet; checked again after the wait",
                    command=command[0])
    notifier = Notifier()
    state = State(config.state_dir, warn=log.warning)
    # A marker for this boot needs none of the wait's machinery: it loads only for a wait.
    marker = state.vouching(config.imds_endpoint, config.arm_endpoint)
    if marker:
        log.info("already Succeeded on this boot", marker=str(state.marker_path))
        resource_id, reads = str(marker["resourceId"]), 0
    else:
        from .waiter import Waiter

        waiter = Waiter(config, log, notifier, started=STARTED)
        resource_id, reads = waiter.run(state), waiter.attempt
    how = f"after {reads} reads" if reads else "seen earlier on this boot"
    notifier.ready(f"VM is Succeeded ({how})")
    log.info("VM is Succeeded", resource_id=resource_id, reads=reads)
    if command:
        log.info("starting worker", argv=shlex.join(command))
        exec_worker(command, worker_env)
    return 0


def _detach(config: Config, args: argparse.Namespace, command: Optional[list[str]]) -> int:
    from .detach import hand_off
    from .launch import check_executable

    worker = command or config.worker
    if not worker:
        raise ConfigError("--detach needs a COMMAND after -- (or AZWAIT_WORKER)")
    # Found and executable now, or the caller (the Custom Script Extension) would
    # report success and the 127 would surface only in the journal.
    check_executable(worker, os.environ)
    # The service's azwait gets this call's options; keys from the environment
    # are passed on by hand_off, and the file is read there again.
    inner = [os.path.abspath(sys.argv[0])]
    if args.config is not None:
        inner += ["--config", str(args.config)]
    for key in KEYS:
        value = getattr(args, key.env, None)
        if value is not None:
            inner += [key.flag, value]
    if command:
        inner += ["--", *command]
    return hand_off(inner, os.environ, lambda line: print(f"azwait: {line}", flush=True))


def _clean(config: Config) -> int:
    from .state import State

    removed = State(config.state_dir).clean()
    logs.get().info("state cleaned", removed=removed or "nothing")
    return 0


def run(argv: Sequence[str]) -> int:
    if argv[:1] == ["sim"]:  # before parsing: the simulator's options are not azwait's
        raise ConfigError(SIM_MOVED)
    head, command = _split_command(argv)
    parser = _parser()
    args, unknown = parser.parse_known_args(head)
    verb = _verb([*args.words, *unknown] if args.words else [])
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if command and verb not in (None, "events"):
        raise ConfigError(f"azwait {verb} takes no -- COMMAND")
    if args.json and verb != "status":
        raise ConfigError("--json goes with azwait status")
    if args.detach and verb:
        raise ConfigError(f"--detach does not go with azwait {verb}")
    flags = {key.env: getattr(args, key.env, None) for key in KEYS}
    config = load(flags, os.environ, args.config)
    if args.detach:
        return _detach(config, args, command)

    logs.configure(config.log_format, config.log_level)
    if verb == "status":
        from .status import show

        return show(config, args.json)
    if verb == "clean":
        return _clean(config)
    if verb == "events":
        from .events import Watcher

        return Watcher(config, command or config.drain_command or (), logs.get()).run()
    return _wait(config, command)


def _report(message: str, level: str = "error") -> None:
    """One line on stderr; through the structured log once it is set up."""
    from .redact import SECRETS

    message = SECRETS.scrub(message)
    if logs.configured():
        getattr(logs.get(), level)(message)
        return
    from .notify import is_journal

    prefix = "<3>" if is_journal(sys.stderr, os.environ) else ""
    with contextlib.suppress(BrokenPipeError):  # nobody reading: the exit code says it
        sys.stderr.write(f"{prefix}azwait: {message}\n")


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    code: Any
    try:
        code = run(list(sys.argv[1:] if argv is None else argv))
    except AzwaitError as err:
        _report(err.message)
        code = err.exit_code
    except Interrupted as stop:
        _report(f"stopped by {signal.Signals(stop.signum).name}; the worker was not started",
                "warning")
        code = stop.exit_code
    except SystemExit as done:  # argparse's --help and --version
        code = done.code
    except BrokenPipeError:
        # stdout closed early (``azwait --version | true``): what was asked is done.
        logs.silence(sys.stdout)
        code = 0
    except Exception as err:  # the boundary: a bug still gets one clear line and exit 1
        _report(f"internal error (a bug, please report it): {type(err).__name__}: {err}")
        if os.environ.get("AZWAIT_LOG_LEVEL", "").lower() == "debug":
            import traceback  # for a bug only: not worth loading on every start

            traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        logs.silence(sys.stdout)
    sys.exit(code)

