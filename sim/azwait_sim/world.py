"""Everything the simulated IMDS and ARM share while running."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from azwait_sim.events import EventBoard
from azwait_sim.faults import FaultBook
from azwait_sim.fleet import Fleet
from azwait_sim.identity import TokenStore, seeded
from azwait_sim.scenario import Scenario
from azwait_sim.throttle import Throttle


class World:
    def __init__(
        self,
        scenario: Scenario,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.scenario = scenario
        self.monotonic = monotonic
        self.wall = wall
        self.fleet = Fleet(scenario, monotonic)
        self.tokens = TokenStore()
        self.throttle = Throttle(scenario.throttle, monotonic)
        self.faults = FaultBook(scenario.faults)
        names = [vm.name for vm in self.fleet]
        self.events = EventBoard(scenario.events, names, seeded(scenario.seed, "events"))
        # Set on shutdown so injected delays end at once instead of holding threads.
        self.stopping = threading.Event()
        self._started = monotonic()

    def start(self) -> None:
        self._started = self.monotonic()
        self.fleet.start_clocks()

    def uptime(self) -> float:
        return self.monotonic() - self._started
