"""azwait-sim: a real HTTP stand-in for Azure IMDS and ARM, for tests,
benchmarks and demos of azwait, never for a production VM.

    from azwait_sim import Simulator, Scenario

    with Simulator(Scenario.from_dict({"states": [["Creating", 0], ["Succeeded", 5]]})) as sim:
        ...  # point the agent at sim.imds_url / sim.arm_url, trust sim.ca_path

Imports nothing from the agent, nor any HTTP or Azure library, so it starts fast.
"""

from __future__ import annotations

from azwait_sim.cli import add_arguments, main, run
from azwait_sim.scenario import Scenario
from azwait_sim.simulator import Simulator

# One Debian source builds azwait and azwait-sim at one version: debian/rules
# refuses a changelog that disagrees with this or with azwait's __version__.
__version__ = "0.2.0"

__all__ = ["Scenario", "Simulator", "__version__", "add_arguments", "main", "run"]
