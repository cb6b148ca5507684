"""The fleet on a fake clock: the real WaitPolicy per VM against the simulator's real
buckets at their real size (tests/perf/fleet_model.py), judged by make bench-fleet's
targets. A thousand VMs take a fraction of a second."""

from __future__ import annotations

import pytest

from tests.perf.fleet_figures import figures, verdicts
from tests.perf.fleet_model import Fleet, run


@pytest.mark.parametrize("identities", [1, 4])
def test_a_thousand_vm_scale_out_meets_every_target(identities: int) -> None:
    """1,000 VMs booting over a minute, on one identity (ARM's per-principal bucket is the
    tightest) or four (Compute is): no 429s to speak of, the busiest minute after the
    boot under half the tightest refill, delays within the bound's multiples."""
    figure = figures(run(Fleet.draw(1000, identities, seed=7)))
    missed = [name for name, ok in verdicts(figure) if not ok]
    assert not missed, (missed, figure)


def test_the_seed_loop_misses_them_in_the_same_model() -> None:
    """The model can tell a bad policy: the 10 s loop floods the same buckets."""
    figure = figures(run(Fleet.draw(1000, 1, seed=7), policy="seed"))
    assert figure["refused_share"] > 0.2 and figure["peak_60s_after_up_share"] > 1.0
