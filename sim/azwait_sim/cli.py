"""``azwait-sim``: run the simulator until SIGTERM/SIGINT or ``--duration``.

On start it prints one JSON line (also written to ``--ready-file``) saying where
IMDS and ARM listen and which CA to trust. Bad flags or scenarios give one line
on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from azwait_sim.scenario import Scenario, apply_flags
from azwait_sim.simulator import Simulator

PROG = "azwait-sim"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options; dests start with ``sim_`` to stay out of the
    way of any options of the caller's own parser."""
    net = parser.add_argument_group("where to listen")
    net.add_argument(
        "--host",
        dest="sim_host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address for both servers (default 127.0.0.1)",
    )
    net.add_argument(
        "--imds-host", dest="sim_imds_host", metavar="ADDR", help="IMDS address (default --host)"
    )
    net.add_argument(
        "--imds-port",
        dest="sim_imds_port",
        default="0",
        metavar="PORT",
        help="IMDS port (default 0: any free port)",
    )
    net.add_argument(
        "--arm-host", dest="sim_arm_host", metavar="ADDR", help="ARM address (default --host)"
    )
    net.add_argument(
        "--arm-port",
        dest="sim_arm_port",
        default="0",
        metavar="PORT",
        help="ARM port (default 0: any free port)",
    )
    net.add_argument(
        "--tls",
        dest="sim_tls",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve ARM over TLS with a test CA (default on)",
    )
    net.add_argument(
        "--cert-dir",
        dest="sim_cert_dir",
        metavar="DIR",
        help="keep the CA here and reuse it on later runs (default: a temp dir)",
    )
    net.add_argument(
        "--tls-name",
        dest="sim_tls_names",
        action="append",
        default=[],
        metavar="NAME",
        help="extra DNS name (or IP) for the ARM certificate",
    )
    world = parser.add_argument_group("what to simulate (flags override --scenario)")
    world.add_argument("--scenario", dest="sim_scenario", metavar="FILE", help="scenario JSON file")
    world.add_argument(
        "--states",
        dest="sim_states",
        metavar="TIMELINE",
        help='provisioning states, e.g. "Creating@0,Succeeded@15"',
    )
    world.add_argument(
        "--cloud",
        dest="sim_cloud",
        metavar="CLOUD",
        help="AzurePublicCloud, AzureUSGovernmentCloud or AzureChinaCloud",
    )
    world.add_argument(
        "--identity",
        dest="sim_identities",
        action="append",
        default=[],
        metavar="ID",
        help="none, system, client_id=X, object_id=Y or msi_res_id=Z (repeatable)",
    )
    world.add_argument("--vms", dest="sim_vms", metavar="N", help="number of VMs")
    world.add_argument(
        "--clock",
        dest="sim_clock",
        metavar="ZERO",
        help="start (default) or first-request: when each VM's clock starts",
    )
    run_group = parser.add_argument_group("running")
    run_group.add_argument(
        "--log", dest="sim_log", metavar="FILE", help="append every request as a JSON line"
    )
    run_group.add_argument(
        "--ready-file",
        dest="sim_ready_file",
        metavar="FILE",
        help="write the start-up JSON line here too",
    )
    run_group.add_argument(
        "--duration",
        dest="sim_duration",
        metavar="SECONDS",
        help="stop after this long (90, 90s, 15m, 2h)",
    )


def _port(value: str, flag: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise ValueError(f"{flag}: expected a port number 0-65535, got {value!r}")
    return int(value)


def _duration(value: str | None) -> float | None:
    if value is None:
        return None
    match = _DURATION.match(value.strip())
    if not match:
        raise ValueError(f"--duration: expected seconds or 90s/15m/2h, got {value!r}")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def _scenario(args: argparse.Namespace) -> Scenario:
    data: Any = {}
    if args.sim_scenario:
        path = Path(args.sim_scenario)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ValueError(f"--scenario: cannot read {path}: {err.strerror or err}") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"--scenario: {path} is not JSON: {err}") from None
    vms = args.sim_vms
    if vms is not None:
        if not vms.isdigit():
            raise ValueError(f"--vms: expected a whole number, got {vms!r}")
        vms = int(vms)
    merged = apply_flags(
        data,
        states=args.sim_states,
        cloud=args.sim_cloud,
        identities=args.sim_identities,
        vms=vms,
        clock=args.sim_clock,
    )
    return Scenario.from_dict(merged)


def _build(args: argparse.Namespace) -> Simulator:
    return Simulator(
        _scenario(args),
        host=args.sim_host,
        imds_port=_port(args.sim_imds_port, "--imds-port"),
        arm_port=_port(args.sim_arm_port, "--arm-port"),
        tls=args.sim_tls,
        cert_dir=Path(args.sim_cert_dir) if args.sim_cert_dir else None,
        log_path=Path(args.sim_log) if args.sim_log else None,
        imds_host=args.sim_imds_host,
        arm_host=args.sim_arm_host,
        tls_names=args.sim_tls_names,
    )


def _write_atomically(path: Path, text: str) -> None:
    # Whoever waits for the file must never read half a line.
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT or --duration; 0 then, 2 on bad flags or scenario."""
    ready_file = Path(args.sim_ready_file) if args.sim_ready_file else None
    try:
        duration = _duration(args.sim_duration)
        sim = _build(args)
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)  # a stale one would say "ready" too soon
        sim.start()
    except (ValueError, OSError) as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    done = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    # Signal handlers can only be set from the main thread (tests call run() elsewhere).
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        line = json.dumps(sim.ready_info())
        print(line, flush=True)
        if ready_file is not None:
            _write_atomically(ready_file, line + "\n")
        deadline = math.inf if duration is None else time.monotonic() + duration
        # Short waits: a signal then ends the run within a tick on any Python.
        while not done.is_set() and time.monotonic() < deadline:
            done.wait(min(0.2, deadline - time.monotonic()))
    except OSError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    finally:
        sim.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line and exit 2, as run() reports a bad value; the usage is --help's.
        self.exit(2, f"{self.prog}: {message}\n")


def main(argv: list[str] | None = None) -> int:
    """The ``azwait-sim`` command (and ``python -m azwait_sim``)."""
    from azwait_sim import __version__

    parser = _Parser(
        prog=PROG,
        description="A stand-in for Azure IMDS, managed-identity tokens and ARM, to test "
        "azwait and image boot gating without Azure. Never install it on a production VM.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except KeyboardInterrupt:
        # Ctrl-C before run() took over SIGINT (while making certificates): no traceback.
        return 130
