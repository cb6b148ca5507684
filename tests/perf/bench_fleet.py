"""make bench-fleet: a scale-out of N VMs booting together, azwait vs the seed loop.

N real agents (default 200) run against one simulator whose subscription-wide read
limits are scaled by N/1000, so the run feels like a 1,000-VM scale-out. Every VM
boots at its own time, spread over the first BOOT_SPREAD seconds as a scale-out's
VMs are, is Creating when its agent first asks IMDS, and turns Succeeded 30-120 s
later on its own clock. (Started all at once, 200 agents would share two cores
and reach ARM together, which no real fleet does: each VM has its own CPUs.)
The same fleet, same flip times, then runs under the seed's policy (tests/perf/seed.sh:
every 10 s, no jitter, no backoff, one ARM read per poll).

Figures, per policy (build/bench/fleet.json, plot in build/bench/fleet.png):
- reads_total, throttled: ARM VM GETs the simulator received, and how many got 429;
- peak_reads_per_s_after_30s: the busiest one-minute window that starts 30 s or
  more after the fleet is up (fleet_up_s: every agent has made its first read), in
  reads per second, against budget_refill_per_s, the scaled Compute subscription
  refill (2,000 scale-set-VM GETs a minute x N/1000). A minute is the unit that
  limit is stated in, and anything shorter is covered three times over by the
  burst; peak_reads_per_s_30s and _10s are the same over shorter windows;
- failed_agents: VMs whose worker never started (or whose agent exited non-zero);
- delay_p50_s / p95 / max: the VM's flip -> its worker's exec;
- cpu_s_total: CPU time of all agents and their children;
- bound_mean_delay_s: the least mean delay the read rate the policy actually used
  allows. A flip at t, with W(t) VMs still waiting and B reads/s shared among them,
  is seen on average W(t)/(2B) later at best; this is the mean of that over all
  flips, B being the policy's mean read rate between the first and the last flip;
- burst_left_min_share: the lowest level the Compute burst bucket (6,000 reads
  x N/1000, the 3-minute policy) fell to, as a share: what the policy left for
  the user's own deployments and autoscaler at the worst moment;
- peak_rss_mb_total: the largest sum of resident memory over all of the fleet's
  processes, sampled every second.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azwait.sim import Scenario, Simulator

HERE = Path(__file__).resolve().parent
AZWAIT = shutil.which("azwait", path=os.path.dirname(sys.executable)) or "azwait"
VMS = int(os.environ.get("BENCH_FLEET_VMS", "200"))
SEED = int(os.environ.get("BENCH_FLEET_SEED", "7"))
BOOT_SPREAD = float(os.environ.get("BENCH_FLEET_BOOT_SPREAD", "60"))
FLIP_WINDOW = (30.0, 120.0)
SETTLE = 30.0  # seconds after the fleet is up before the read-rate target applies
WINDOW = 60  # seconds: the window peak read rates are measured over, as the limit is
OVERTIME = 180.0  # after the last flip, agents still waiting count as failed
COMPUTE_REFILL_PER_S = 2000 / 60  # GET scale-set VM, per subscription, unscaled
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20

# Acceptance for the azwait run (issue 7).
TARGET_THROTTLED_SHARE = 0.01
TARGET_PEAK_SHARE = 0.5
TARGET_P95_S = 60.0
TARGET_P50_OVER_BOUND = 2.0


@dataclass
class Run:
    policy: str
    flips: list[float]  # on the bench's clock (seconds since the first agent was started)
    started: list[float | None]  # worker exec, same clock
    exit_codes: list[int | None]
    reads: list[tuple[float, int]]  # (t, status) of every ARM VM GET
    rss_peak_mb: float
    cpu_s: float
    fleet_up: float  # the last agent's first ARM read


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


def run_fleet(policy: str, boots: list[float], flips: list[float], work: Path,
              command: Callable[[Simulator, int, Path], tuple[list[str], dict[str, str]]]
              ) -> Run:
    scenario = Scenario.from_dict({
        "vms": len(flips),
        "states": [["Creating", 0]],
        "vm_states": {str(vm): [["Creating", 0], ["Succeeded", flip]]
                      for vm, flip in enumerate(flips)},
        "throttle": {"scale": len(flips) / 1000},
        "clock": "first-request",
        "seed": SEED,
    })
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with Simulator(scenario, cert_dir=work / "certs") as sim:
        zero = time.time()
        marks = [work / policy / f"started-{vm}" for vm in range(len(flips))]
        (work / policy).mkdir(parents=True)
        procs: dict[int, subprocess.Popen[bytes]] = {}
        unbooted = sorted(range(len(flips)), key=boots.__getitem__, reverse=True)
        rss_peak = 0.0
        deadline = zero + max(boots) + max(flips) + OVERTIME
        # Boot each VM's agent on time; sample the fleet's memory about once a second.
        while (unbooted or any(p.poll() is None for p in procs.values())) \
                and time.time() < deadline:
            while unbooted and zero + boots[unbooted[-1]] <= time.time():
                vm = unbooted.pop()
                argv, env = command(sim, vm, work / policy)
                procs[vm] = subprocess.Popen(
                    [*argv, "touch", str(marks[vm])], env=env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=(work / policy / f"agent-{vm}.log").open("wb"))
            rss_peak = max(rss_peak, total_rss_mb(fleet_processes(os.getpid())))
            next_boot = zero + boots[unbooted[-1]] if unbooted else math.inf
            time.sleep(max(0.0, min(1.0, next_boot - time.time())))
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        log = sim.requests()
    reads = [(r["wall"] - zero, r["status"]) for r in log if r["endpoint"] == "arm"]
    booted = {r["vm"]: r["wall"] - r["t"] - zero for r in log}  # each VM's clock 0
    first_reads: dict[int, float] = {}
    for r in log:
        if r["endpoint"] == "arm":
            first_reads.setdefault(r["vm"], r["wall"] - zero)
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = [m.stat().st_mtime - zero if m.exists() else None for m in marks]
    return Run(policy=policy,
               flips=[booted.get(vm, math.inf) + flip for vm, flip in enumerate(flips)],
               started=started, fleet_up=max(first_reads.values(), default=math.inf),
               exit_codes=[procs[vm].returncode for vm in range(len(flips))], reads=reads,
               rss_peak_mb=rss_peak,
               cpu_s=(cpu_after.ru_utime + cpu_after.ru_stime
                      - cpu_before.ru_utime - cpu_before.ru_stime))


def azwait_agent(sim: Simulator, vm: int, work: Path) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZWAIT_")}
    env.update(AZWAIT_IMDS_ENDPOINT=f"{sim.imds_url}/vm/{vm}", AZWAIT_ARM_ENDPOINT=sim.arm_url,
               AZWAIT_STATE_DIR=str(work / f"state-{vm}"), AZWAIT_LOG_FORMAT="json",
               REQUESTS_CA_BUNDLE=str(sim.ca_path))
    return [AZWAIT, "--config", "/dev/null", "--"], env


def seed_agent(sim: Simulator, vm: int, work: Path) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ, IMDS=f"{sim.imds_url}/vm/{vm}", ARM=sim.arm_url, CA=str(sim.ca_path))
    return ["bash", str(HERE / "seed.sh")], env


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def peak_rate(times: list[float], since: float, window: float = WINDOW) -> float:
    """Reads per second in the busiest window-second window starting at or after since."""
    end = max(times, default=since)
    best = 0
    start = since
    while start + window <= max(end, since + window):
        best = max(best, sum(1 for t in times if start <= t < start + window))
        start += 1.0
    return best / window


def burst_left_min(reads: list[tuple[float, int]], refill: float, burst: float) -> float:
    """The lowest the Compute burst bucket (3-minute policy) fell: what others had left."""
    level, last, lowest = burst, 0.0, burst
    for t, status in sorted(reads):
        level = min(burst, level + (t - last) * refill)
        last = t
        if status != 429:
            level = max(0.0, level - 1)
            lowest = min(lowest, level)
    return lowest


def figures(run: Run, refill: float) -> dict[str, Any]:
    n = len(run.flips)
    done = [s if s is not None and rc == 0 else math.inf
            for s, rc in zip(run.started, run.exit_codes)]
    delays = [s - f for s, f in zip(done, run.flips) if s != math.inf]
    times = [t for t, _ in run.reads]
    first, last = min(run.flips), max(run.flips)
    used = sum(1 for t in times if first <= t < last) / (last - first)
    waiting = [sum(1 for s in done if s > flip) for flip in run.flips]
    bound = statistics.fmean(w / (2 * used) for w in waiting) if used else math.inf
    burst = refill * 180  # Compute's burst is three minutes of refill
    return {
        "vms": n,
        "reads_total": len(run.reads),
        "throttled": sum(1 for _, status in run.reads if status == 429),
        "failed_agents": sum(1 for s in done if s == math.inf),
        "fleet_up_s": round(run.fleet_up, 1),
        "peak_reads_per_s_after_30s": round(peak_rate(times, run.fleet_up + SETTLE), 2),
        "peak_reads_per_s_30s": round(peak_rate(times, run.fleet_up + SETTLE, 30.0), 2),
        "peak_reads_per_s_10s": round(peak_rate(times, run.fleet_up + SETTLE, 10.0), 2),
        "peak_reads_per_s_while_booting": round(peak_rate(times, 0.0), 2),
        "budget_refill_per_s": round(refill, 3),
        "burst_left_min_share": round(burst_left_min(run.reads, refill, burst) / burst, 3),
        "reads_per_s_used_during_flips": round(used, 3),
        "delay_p50_s": round(statistics.median(delays), 2) if delays else None,
        "delay_p95_s": round(percentile(delays, 0.95), 2) if delays else None,
        "delay_max_s": round(max(delays), 2) if delays else None,
        "bound_mean_delay_s": round(bound, 2),
        "last_worker_s": round(max(s for s in done if s != math.inf), 1) if delays else None,
        "peak_rss_mb_total": round(run.rss_peak_mb, 1),
        "cpu_s_total": round(run.cpu_s, 1),
    }


def verdicts(fig: dict[str, Any]) -> list[tuple[str, bool]]:
    p50, bound = fig["delay_p50_s"], fig["bound_mean_delay_s"]
    return [
        ("no failed agents", fig["failed_agents"] == 0),
        (f"429s <= {TARGET_THROTTLED_SHARE:.0%} of reads",
         fig["throttled"] <= TARGET_THROTTLED_SHARE * fig["reads_total"]),
        (f"peak reads/s {SETTLE:g} s after boot <= {TARGET_PEAK_SHARE:.0%} of refill",
         fig["peak_reads_per_s_after_30s"] <= TARGET_PEAK_SHARE * fig["budget_refill_per_s"]),
        (f"p95 delay <= {TARGET_P95_S:g} s",
         fig["delay_p95_s"] is not None and fig["delay_p95_s"] <= TARGET_P95_S),
        (f"p50 delay <= {TARGET_P50_OVER_BOUND:g} x bound",
         p50 is not None and p50 <= TARGET_P50_OVER_BOUND * bound),
    ]


def plot(runs: list[Run], refill: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (reads_ax, started_ax) = plt.subplots(2, 1, sharex=True, figsize=(9, 7))
    for run, colour in zip(runs, ("tab:blue", "tab:red")):
        end = math.ceil(max([t for t, _ in run.reads] + [0.0])) + 1
        per_s = [0] * end
        for t, _ in run.reads:
            per_s[int(t)] += 1
        smooth = [sum(per_s[max(0, i - WINDOW + 1):i + 1]) / WINDOW for i in range(end)]
        reads_ax.plot(range(end), smooth, color=colour, label=f"{run.policy} ({WINDOW} s mean)")
        starts = sorted(s for s in run.started if s is not None)
        started_ax.step(starts, range(1, len(starts) + 1), where="post", color=colour,
                        label=f"{run.policy}: workers started")
    flips = sorted(runs[0].flips)
    started_ax.step(flips, range(1, len(flips) + 1), where="post", color="grey",
                    linestyle=":", label="VMs Succeeded")
    reads_ax.axhline(refill, color="black", linestyle="--", label="Compute refill (scaled)")
    reads_ax.axhline(refill * TARGET_PEAK_SHARE, color="black", linestyle=":",
                     label=f"{TARGET_PEAK_SHARE:.0%} of refill")
    reads_ax.set_ylabel("ARM VM GETs per second")
    reads_ax.legend(loc="upper right")
    started_ax.set_ylabel("VMs")
    started_ax.set_xlabel("seconds since the first VM booted")
    started_ax.legend(loc="lower right")
    fig.suptitle(f"{len(flips)} VMs, limits scaled to a 1,000-VM scale-out")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    began = time.monotonic()
    rng = random.Random(SEED)
    flips = [round(rng.uniform(*FLIP_WINDOW), 2) for _ in range(VMS)]
    boots = [round(rng.uniform(0.0, BOOT_SPREAD), 2) for _ in range(VMS)]
    refill = COMPUTE_REFILL_PER_S * VMS / 1000
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runs = [run_fleet("azwait", boots, flips, work, azwait_agent),
                run_fleet("seed", boots, flips, work, seed_agent)]
    report = {run.policy: figures(run, refill) for run in runs}
    out = Path("build/bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(runs, refill, out / "fleet.png")

    print(f"{VMS} VMs, limits scaled by {VMS / 1000:g}: Compute refill {refill:.2f} reads/s")
    print(f"{'':30}{'azwait':>12}{'seed':>12}")
    for key in report["azwait"]:
        print(f"{key:30}{report['azwait'][key]!s:>12}{report['seed'][key]!s:>12}")
    mine, theirs = report["azwait"]["throttled"], report["seed"]["throttled"]
    ratio = f"{theirs / mine:.1f}x" if mine else f"{theirs} vs none"
    print(f"429s, seed / azwait: {ratio}")
    ok = True
    for name, passed in verdicts(report["azwait"]):
        print(f"  {'ok  ' if passed else 'MISS'} azwait: {name}")
        ok &= passed
    print(f"wrote {out / 'fleet.json'} and {out / 'fleet.png'} "
          f"in {time.monotonic() - began:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
