"""The fleet on a fake clock: the real WaitPolicy per VM against the simulator's real
buckets at their real size (tests/perf/fleet_model.py), judged by make bench-fleet's
targets. A thousand VMs take a fraction of a second."""

from __future__ import annotations

import pytest

from tests.perf.fleet_figures import figures, verdicts
from tests.perf.fleet_model import Fleet, run


@pytest.mark.parametrize("identities", [1, 4])
def test_a_thousand_vm_scale_out_stays_in_budget(identities: int) -> None:
    """1,000 VMs booting over a minute, on one identity (ARM's per-principal bucket is the
    tightest) or four (Compute is): every worker starts, none before its flip, under 1 %
    of reads refused, the busiest minute after the boot under half the tightest refill.
    (Delays are make bench-fleet's to judge.)"""
    figure = figures(run(Fleet.draw(1000, identities, seed=7)))
    budget = [(name, ok) for name, ok in verdicts(figure) if "delay" not in name]
    assert len(budget) == 4 and all(ok for _, ok in budget), (budget, figure)


def test_the_seed_loop_misses_them_in_the_same_model() -> None:
    """The model can tell a bad policy: the 10 s loop floods the same buckets."""
    figure = figures(run(Fleet.draw(1000, 1, seed=7), policy="seed"))
    assert figure["refused_share"] > 0.2 and figure["peak_60s_after_up_share"] > 1.0
