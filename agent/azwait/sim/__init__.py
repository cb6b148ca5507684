"""``azwait sim``: a real HTTP stand-in for Azure IMDS and ARM, for tests,
benchmarks and demos.

    from azwait.sim import Simulator, Scenario

    with Simulator(Scenario.from_dict({"states": [["Creating", 0], ["Succeeded", 5]]})) as sim:
        ...  # point the agent at sim.imds_url / sim.arm_url, trust sim.ca_path

Imports nothing from the agent's HTTP or Azure stack, so it starts fast.
"""

from __future__ import annotations

from azwait.sim.cli import add_arguments, run
from azwait.sim.scenario import Scenario
from azwait.sim.simulator import Simulator

__all__ = ["Scenario", "Simulator", "add_arguments", "run"]
