"""make bench-fleet: scale-outs at the real ratios of Azure's read budgets, azwait vs the seed loop.

Two kinds of run, judged by the same figures and targets (fleet_figures.py):

- real agents: N `azwait` processes (default 200) against one simulator whose shared
  buckets (ARM per principal and per subscription, Compute's 3- and 30-minute
  policies) are all scaled by N/1000, so the run stands for a 1,000-VM scale-out;
  the per-VM limit stays real. Scenarios: one scale set (one identity, whose ARM
  bucket is the tightest) and four scale sets with their own identities in one
  subscription (Compute is then the tightest). The VMs boot over the first 60 s, as
  a scale-out's do; each is Creating until 30-120 s after its agent's first IMDS
  request. The same fleet, same boots and flips, then runs the seed loop
  (tests/perf/seed.sh: every 10 s, no jitter, nothing learnt from a 429).
- the fake-clock model (fleet_model.py): the real WaitPolicy per VM against the
  simulator's real buckets at real size, for 1,000 and 5,000 VMs on one and on four
  identities. The 5,000 boot over ten minutes: in one, their first reads alone
  would be 3.3x ARM's per-principal refill, which no agent can see coming.

Writes build/bench/fleet.json (one object per scenario, azwait and seed side by side)
and build/bench/fleet.png, prints the table, and exits 1 if azwait misses a target
in any scenario. BENCH_FLEET_VMS, BENCH_FLEET_SEED and BENCH_FLEET_BOOT_SPREAD change
the real runs; BENCH_FLEET_ONLY=model runs the model alone.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from azwait_sim import Scenario, Simulator

from .fleet_figures import Trace, figures, least_left, tightest_refill, verdicts
from .fleet_model import Fleet
from .fleet_model import run as run_model

HERE = Path(__file__).resolve().parent
AZWAIT = shutil.which("azwait", path=os.path.dirname(sys.executable)) or "azwait"
VMS = int(os.environ.get("BENCH_FLEET_VMS", "200"))
SEED = int(os.environ.get("BENCH_FLEET_SEED", "7"))
BOOT_SPREAD = float(os.environ.get("BENCH_FLEET_BOOT_SPREAD", "60"))
ONLY = os.environ.get("BENCH_FLEET_ONLY", "")
FLIP_WINDOW = (30.0, 120.0)
OVERTIME = 900.0  # after the last flip, agents still waiting count as failed
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
REAL = (("one scale set", 1), ("four scale sets", 4))
MODEL = ((1000, 1), (1000, 4), (5000, 1), (5000, 4))
# Seconds the model's VMs take to boot: 1,000 in a minute, as the real runs stand for;
# 5,000 in ten. Booted in five minutes on one identity, every VM's first read plus the
# one that sees its flip would need 33 reads/s against ARM's 25: no policy could keep
# both its reads unrefused and its delays bounded, so that case measures nothing.
BOOT_PACE = {1000: 60.0, 5000: 600.0}

Command = Callable[[Simulator, int, Path], tuple[list[str], dict[str, str]]]


def fleet_processes(root: int) -> list[int]:
    """Every process below ``root``: the agents and whatever they run."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def total_rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError):
            continue  # exited between the listing and the read
    return total * PAGE_MB


def run_fleet(name: str, policy: str, scale_sets: int, boots: list[float],
              flips: list[float], work: Path, command: Command) -> Trace:
    n = len(flips)
    scale = n / 1000
    scenario = Scenario.from_dict({
        "vms": n,
        "scale_sets": scale_sets,
        "states": [["Creating", 0]],
        "vm_states": {str(vm): [["Creating", 0], ["Succeeded", flip]]
                      for vm, flip in enumerate(flips)},
        "throttle": {"scale": scale},
        "clock": "first-request",
        "seed": SEED,
    })
    here = work / f"{policy}-{scale_sets}"
    here.mkdir(parents=True)
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with Simulator(scenario, cert_dir=work / "certs") as sim:
        zero = time.time()
        marks = [here / f"started-{vm}" for vm in range(n)]
        procs: dict[int, subprocess.Popen[bytes]] = {}
        unbooted = sorted(range(n), key=boots.__getitem__, reverse=True)
        rss_peak = 0.0
        deadline = zero + max(boots) + max(flips) + OVERTIME
        # Boot each VM's agent on time; sample the fleet's memory about once a second.
        while (unbooted or any(p.poll() is None for p in procs.values())) \
                and time.time() < deadline:
            while unbooted and zero + boots[unbooted[-1]] <= time.time():
                vm = unbooted.pop()
                argv, env = command(sim, vm, here)
                procs[vm] = subprocess.Popen(
                    [*argv, "touch", str(marks[vm])], env=env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=(here / f"agent-{vm}.log").open("wb"))
            rss_peak = max(rss_peak, total_rss_mb(fleet_processes(os.getpid())))
            next_boot = zero + boots[unbooted[-1]] if unbooted else math.inf
            time.sleep(max(0.0, min(1.0, next_boot - time.time())))
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        log = sim.requests()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    arm = [r for r in log if r["endpoint"] == "arm"]
    booted = {r["vm"]: r["wall"] - r["t"] - zero for r in log}  # each VM's clock 0
    first_reads: dict[int, float] = {}
    for r in arm:
        first_reads.setdefault(r["vm"], r["wall"] - zero)
    started = [m.stat().st_mtime - zero if m.exists() else None for m in marks]
    return Trace(
        scenario=name, policy=policy, refill=tightest_refill(scale, scale_sets),
        flips=[booted.get(vm, math.inf) + flip for vm, flip in enumerate(flips)],
        started=started,
        failed=[s is None or procs[vm].returncode != 0 for vm, s in enumerate(started)],
        reads=[(r["wall"] - zero, r["status"]) for r in arm],
        fleet_up=max(first_reads.values(), default=math.inf),
        least_left=least_left([r["budget"] for r in arm], scale),
        cpu_s=(cpu_after.ru_utime + cpu_after.ru_stime
               - cpu_before.ru_utime - cpu_before.ru_stime),
        peak_rss_mb=rss_peak)


def azwait_agent(sim: Simulator, vm: int, work: Path) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZWAIT_")}
    env.update(AZWAIT_IMDS_ENDPOINT=f"{sim.imds_url}/vm/{vm}", AZWAIT_ARM_ENDPOINT=sim.arm_url,
               AZWAIT_STATE_DIR=str(work / f"state-{vm}"), AZWAIT_LOG_FORMAT="json",
               REQUESTS_CA_BUNDLE=str(sim.ca_path))
    return [AZWAIT, "--config", "/dev/null", "--"], env


def seed_agent(sim: Simulator, vm: int, work: Path) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ, IMDS=f"{sim.imds_url}/vm/{vm}", ARM=sim.arm_url, CA=str(sim.ca_path))
    return ["bash", str(HERE / "seed.sh")], env


def real_runs(work: Path) -> list[tuple[Trace, Trace]]:
    rng = random.Random(SEED)
    flips = [round(rng.uniform(*FLIP_WINDOW), 2) for _ in range(VMS)]
    boots = [round(rng.uniform(0.0, BOOT_SPREAD), 2) for _ in range(VMS)]
    pairs = []
    for name, sets in REAL:
        label = f"{VMS} agents, {name}"
        pairs.append((run_fleet(label, "azwait", sets, boots, flips, work, azwait_agent),
                      run_fleet(label, "seed", sets, boots, flips, work, seed_agent)))
    return pairs


def model_runs() -> list[tuple[Trace, Trace]]:
    pairs = []
    for vms, sets in MODEL:
        fleet = Fleet.draw(vms, sets, seed=SEED, boot_spread=BOOT_PACE[vms])
        label = f"model {vms} VMs, {sets} identit{'y' if sets == 1 else 'ies'}"
        pairs.append((run_model(fleet, "azwait", label), run_model(fleet, "seed", label)))
    return pairs


def plot(pairs: list[tuple[Trace, Trace]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(pairs), 1, sharex=False, figsize=(9, 3.2 * len(pairs)),
                             squeeze=False)
    for ax, pair in zip(axes[:, 0], pairs):
        for trace, colour in zip(pair, ("tab:blue", "tab:red")):
            end = math.ceil(max([t for t, _ in trace.reads] + [0.0])) + 1
            per_s = [0] * end
            for t, _ in trace.reads:
                per_s[int(t)] += 1
            window = 60
            smooth = [sum(per_s[max(0, i - window + 1):i + 1]) / window / trace.refill
                      for i in range(end)]
            ax.plot(range(end), smooth, color=colour, label=f"{trace.policy} (60 s mean)")
        ax.axhline(1.0, color="black", linestyle="--", label="tightest refill")
        ax.axhline(0.5, color="black", linestyle=":", label="half of it")
        ax.axvline(pair[0].fleet_up, color="grey", linestyle=":", label="fleet up")
        ax.set_title(pair[0].scenario)
        ax.set_ylabel("reads / refill")
        ax.legend(loc="upper right", fontsize="small")
    axes[-1, 0].set_xlabel("seconds since the first VM booted")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> int:
    began = time.monotonic()
    pairs = model_runs()
    if ONLY != "model":
        with tempfile.TemporaryDirectory() as tmp:
            pairs = real_runs(Path(tmp)) + pairs
    report = {mine.scenario: {"azwait": figures(mine), "seed": figures(theirs)}
              for mine, theirs in pairs}
    out = Path("build/bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet.json").write_text(json.dumps(report, indent=2) + "\n")
    plot([pair for pair in pairs if not pair[0].scenario.startswith("model")] or pairs,
         out / "fleet.png")
    ok = True
    for scenario, both in report.items():
        print(f"\n{scenario}")
        print(f"  {'':28}{'azwait':>14}{'seed':>14}")
        for key, value in both["azwait"].items():
            if key == "least_left_share":
                continue
            print(f"  {key:28}{value!s:>14}{both['seed'][key]!s:>14}")
        for bucket, share in both["azwait"]["least_left_share"].items():
            theirs = both["seed"]["least_left_share"].get(bucket)
            print(f"  {'least left, ' + bucket:28}{share!s:>14}{theirs!s:>14}")
        for name, passed in verdicts(both["azwait"]):
            print(f"    {'ok  ' if passed else 'MISS'} {name}")
            ok &= passed
    print(f"\nwrote {out / 'fleet.json'} and {out / 'fleet.png'} "
          f"in {time.monotonic() - began:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
