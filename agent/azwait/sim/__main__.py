"""``python -m azwait.sim``: the simulator without the agent's command line."""

from __future__ import annotations

import sys

from azwait.sim.cli import main

if __name__ == "__main__":
    sys.exit(main())
