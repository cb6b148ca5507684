"""The Simulator: IMDS (plain HTTP) and ARM (TLS by default) on two ports,
sharing one World and one request log."""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from azwait_sim import arm, imds
from azwait_sim.fleet import VM
from azwait_sim.scenario import Scenario
from azwait_sim.server import RequestLog, SimServer
from azwait_sim.tls import ensure_certificates
from azwait_sim.world import World

_WILDCARDS = ("", "0.0.0.0", "::")  # noqa: S104 - names to recognise, not to bind
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _url(scheme: str, host: str, port: int) -> str:
    if scheme == "https" and host in _WILDCARDS + _LOOPBACK:
        host = "localhost"  # the name the certificate is surely valid for
    elif host in _WILDCARDS:
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" if port == default else f"{scheme}://{host}:{port}"


class Simulator:
    """IMDS + ARM for one scenario. Nothing happens until ``start()``."""

    def __init__(
        self,
        scenario: Scenario,
        host: str = "127.0.0.1",
        imds_port: int = 0,
        arm_port: int = 0,
        tls: bool = True,
        cert_dir: str | Path | None = None,
        log_path: str | Path | None = None,
        *,
        imds_host: str | None = None,
        arm_host: str | None = None,
        tls_names: Iterable[str] = (),
    ) -> None:
        self.scenario = scenario
        self._imds_address = (imds_host or host, imds_port)
        self._arm_address = (arm_host or host, arm_port)
        self._tls = tls
        self._cert_dir = None if cert_dir is None else Path(cert_dir)
        self._log_path = None if log_path is None else Path(log_path)
        self._tls_names = tuple(tls_names)
        self._world: World | None = None
        self._log: RequestLog | None = None
        self._servers: list[SimServer] = []
        self._threads: list[threading.Thread] = []
        self._temp_dir: Path | None = None
        self._ca: Path | None = None

    def start(self) -> Simulator:
        """Listen on both ports and return; ports 0 pick free ones."""
        if self._world is not None:
            raise RuntimeError("simulator already started")
        world = World(self.scenario)
        context = self._tls_context() if self._tls else None
        self._log = RequestLog(self._log_path)
        try:
            self._servers = [
                SimServer(self._imds_address, world, imds.handle, self._log),
                SimServer(self._arm_address, world, arm.handle, self._log, context),
            ]
        except OSError:
            for server in self._servers:
                server.server_close()
            self._cleanup()
            raise
        world.start()
        self._world = world
        for server, name in zip(self._servers, ("imds", "arm")):
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.025},
                name=f"azwait-sim-{name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def _tls_context(self) -> ssl.SSLContext:
        directory = self._cert_dir
        if directory is None:
            directory = self._temp_dir = Path(tempfile.mkdtemp(prefix="azwait-sim-"))
        files = ensure_certificates(directory, self._tls_names)
        self._ca = files.ca
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(files.cert, files.key)
        return context

    def stop(self) -> None:
        """Stop serving; the request log stays readable. Safe to call twice."""
        if self._world is None or self._world.stopping.is_set():
            return
        self._world.stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._log is not None:
            self._log.close()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def world(self) -> World:
        if self._world is None:
            raise RuntimeError("simulator not started")
        return self._world

    @property
    def imds_url(self) -> str:
        self.world  # noqa: B018 - raises when not started
        host, port = self._servers[0].server_address[:2]
        return _url("http", self._imds_address[0] or str(host), int(port))

    @property
    def arm_url(self) -> str:
        self.world  # noqa: B018 - raises when not started
        host, port = self._servers[1].server_address[:2]
        return _url("https" if self._tls else "http", self._arm_address[0] or str(host), int(port))

    @property
    def ca_path(self) -> Path | None:
        return self._ca

    def ready_info(self) -> dict[str, Any]:
        """The start-up line: where to reach the simulator, and how to trust it."""
        ca = None if self._ca is None else str(self._ca)
        return {"imds": self.imds_url, "arm": self.arm_url, "ca": ca, "pid": os.getpid()}

    def requests(self) -> list[dict[str, Any]]:
        return [] if self._log is None else self._log.entries()

    def issued_tokens(self) -> list[str]:
        return self.world.tokens.tokens()

    def _vm(self, vm: int) -> VM:
        found = self.world.fleet.get(vm)
        if found is None:
            raise IndexError(f"no VM {vm}: the scenario has {len(self.world.fleet)}")
        return found

    def set_state(self, state: str, vm: int = 0) -> None:
        """From now on ``vm`` is in ``state`` (the rest of its timeline is dropped)."""
        self.world.fleet.set_state(self._vm(vm), state)

    def now(self, vm: int = 0) -> float:
        """Seconds on ``vm``'s scenario clock."""
        return self.world.fleet.now(self._vm(vm))

    def vm_info(self, vm: int = 0) -> dict[str, str]:
        """Identifiers of ``vm`` as IMDS reports them."""
        found = self._vm(vm)
        return {
            "name": found.name,
            "resource_id": found.resource_id,
            "vm_id": found.vm_id,
            "imds_url": self.imds_url if vm == 0 else f"{self.imds_url}/vm/{vm}",
        }
