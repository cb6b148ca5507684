"""The one entry point, and the one place that turns errors into exit codes."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, Optional

from . import __version__
from .config import DEFAULT_FILE, KEYS, Config, load
from .errors import AzwaitError, ConfigError, Interrupted

USAGE = """\
azwait [OPTIONS] [-- COMMAND [ARG...]]  wait for Succeeded; then exec COMMAND, or exit 0
       azwait --detach [OPTIONS] -- COMMAND... hand wait+exec to systemd; return at once
       azwait events [OPTIONS] [-- DRAIN...]   watch Scheduled Events; drain, then approve
       azwait status [--json]                  one look: resource, cloud, identity, state
       azwait clean                            forget per-VM state (last step of an image build)
       azwait sim [OPTIONS]                    the built-in Azure simulator (azwait sim --help)"""

EPILOG = """\
exit codes:
  0        VM is Succeeded (worker exec'd, or nothing to exec)
           (events: stopped by SIGTERM)
  1        unexpected internal error (a bug)
  2        bad command line or configuration value
  3        timeout: still not Succeeded when AZWAIT_TIMEOUT ran out
           (status: not Succeeded yet)
  4        terminal state: Failed, Canceled, Deleting, or the VM vanished
  5        not an Azure VM: IMDS unreachable for AZWAIT_IMDS_GRACE
  6        no managed identity, or ARM 401/403 after AZWAIT_RBAC_GRACE
  7        --detach: no systemd as PID 1 to hand the wait to (or it refused)
  126/127  COMMAND not executable / not found
  128+N    stopped by signal N (SIGTERM: 143)

Every option is also an AZWAIT_* environment variable and a line in
/etc/default/azwait (command line > environment > file > default).
Durations: 90, 90s, 15m, 2h. COMMAND is run without a shell."""

VERBS = ("status", "clean", "events")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="azwait", usage=USAGE, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Hold a worker back until Azure Resource Manager says this VM "
                                 "is provisioned (provisioningState Succeeded).")
    parser.add_argument("verb", nargs="?", choices=VERBS, help=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"azwait {__version__}")
    parser.add_argument("--json", action="store_true", help="status: print JSON")
    parser.add_argument("--detach", action="store_true",
                        help="hand the wait and COMMAND to a transient systemd service "
                             "(azwait-detached.service) and return at once")
    parser.add_argument("--config", metavar="FILE", type=Path, default=DEFAULT_FILE,
                        help=f"KEY=VALUE file to read (default {DEFAULT_FILE})")
    keys = parser.add_argument_group("configuration (each also AZWAIT_<NAME>)")
    for key in KEYS:
        if key.name in ("WORKER", "DRAIN_COMMAND"):
            continue  # given as -- COMMAND
        default = f" (default {key.default})" if key.default else ""
        keys.add_argument(key.flag, dest=key.env, metavar="VALUE", help=key.help + default)
    return parser


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
    from . import logs
    from .launch import exec_worker, findable
    from .notify import Notifier
    from .state import State
    from .waiter import Waiter

    log = logs.get()
    worker_env = dict(os.environ)
    command = command or config.worker
    settings = config.describe()
    settings["worker"] = shlex.join(command) if command else None
    log.info("azwait starting", version=__version__, **settings)
    if command and not findable(command, worker_env):
        log.warning("worker command not found yet; checked again after the wait",
                    command=command[0])
    notifier = Notifier()
    waiter = Waiter(config, log, notifier)
    instance = waiter.run(State(config.state_dir))
    how = f"after {waiter.attempt} reads" if instance else "seen earlier on this boot"
    notifier.ready(f"VM is Succeeded ({how})")
    log.info("VM is Succeeded", resource_id=instance.resource_id if instance else None,
             reads=waiter.attempt)
    if command:
        log.info("starting worker", argv=list(command))
        exec_worker(command, worker_env)
    return 0


def _detach(config: Config, args: argparse.Namespace, command: Optional[list[str]]) -> int:
    from .detach import hand_off

    if not (command or config.worker):
        raise ConfigError("--detach needs a COMMAND after -- (or AZWAIT_WORKER)")
    # The service's azwait gets this call's options; keys from the environment
    # are passed on by hand_off, and the file is read there again.
    inner = [os.path.abspath(sys.argv[0]), "--config", str(args.config)]
    for key in KEYS:
        value = getattr(args, key.env, None)
        if value is not None:
            inner += [key.flag, value]
    if command:
        inner += ["--", *command]
    return hand_off(inner, os.environ, lambda line: print(f"azwait: {line}", flush=True))


def _clean(config: Config) -> int:
    from . import logs
    from .state import State

    removed = State(config.state_dir).clean()
    logs.get().info("state cleaned", removed=removed or "nothing")
    return 0


def run(argv: Sequence[str]) -> int:
    if argv[:1] == ["sim"]:
        from . import sim

        sim_parser = _Parser(prog="azwait sim", description="The built-in Azure simulator "
                             "(IMDS, managed-identity tokens, ARM) for demos and tests.")
        sim.add_arguments(sim_parser)
        return sim.run(sim_parser.parse_args(list(argv[1:])))
    head, command = _split_command(argv)
    args = _parser().parse_args(head)
    if command and args.verb not in (None, "events"):
        raise ConfigError(f"azwait {args.verb} takes no -- COMMAND")
    if args.json and args.verb != "status":
        raise ConfigError("--json goes with azwait status")
    if args.detach and args.verb:
        raise ConfigError(f"--detach does not go with azwait {args.verb}")
    flags = {key.env: getattr(args, key.env, None) for key in KEYS}
    config = load(flags, os.environ, args.config)
    if args.detach:
        return _detach(config, args, command)

    from . import logs

    logs.configure(config.log_format, config.log_level)
    if args.verb == "status":
        from .status import show

        return show(config, args.json)
    if args.verb == "clean":
        return _clean(config)
    if args.verb == "events":
        from .events import Watcher

        return Watcher(config, command or config.drain_command or (), logs.get()).run()
    return _wait(config, command)


def _report(message: str, level: str = "error") -> None:
    """One line on stderr; through the structured log once it is set up."""
    from .redact import SECRETS

    message = SECRETS.scrub(message)
    structlog = sys.modules.get("structlog")  # not imported yet: not set up, and not needed
    if structlog is not None and structlog.is_configured():
        getattr(structlog.get_logger(), level)(message)
        return
    from .notify import is_journal

    prefix = "<3>" if is_journal(sys.stderr, os.environ) else ""
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
    except Exception as err:  # the boundary: a bug still gets one clear line and exit 1
        _report(f"internal error (a bug, please report it): {type(err).__name__}: {err}")
        if os.environ.get("AZWAIT_LOG_LEVEL", "").lower() == "debug":
            traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.exit(code)
