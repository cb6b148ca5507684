"""``python -m azwait_sim``: the same as the ``azwait-sim`` command."""

from __future__ import annotations

import sys

from azwait_sim.cli import main

if __name__ == "__main__":
    sys.exit(main())
