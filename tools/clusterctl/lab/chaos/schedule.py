"""A fault schedule from a seed: the same (scenario, seed, duration, nodes) gives the same
schedule. Faults come one at a time: each is held, healed, and followed by a recovery gap.
What only the running cluster knows (who leads, who runs a group) is resolved when the fault
starts; everything else is drawn here."""
import random

from clusterd import quorum, timing

from .testcluster import SIBLINGS, STOP_TIMEOUT

TOKEN_TIMEOUT, TOKEN_COEFFICIENT = 1.0, 0.65  # a chaos cluster's corosync-style token settings
WARMUP = 5.0  # seconds of plain workload before the first fault
HOLD = (6.0, 12.0)  # how long a fault stays
RECOVER = (9.0, 13.0)  # the gap after a heal, for restarts, elections and failovers to settle
FIXED_HOLD, FIXED_RECOVER = (6.0, 9.0), (9.0, 11.0)  # a fixed sequence (smoke) kept short


class ScheduleError(ValueError):
    pass


def effective_token(n):
    return quorum.effective_token(TOKEN_TIMEOUT, TOKEN_COEFFICIENT, n)


def fence_delay(n):
    """The watchdog fence delay of a chaos cluster of n nodes (its groups: SIBLINGS resources
    with STOP_TIMEOUT each), by clusterd.timing's formula."""
    stop_bound = len(SIBLINGS) * (STOP_TIMEOUT + timing.KILL_WAIT)
    return timing.fence_delay(timing.lease_length(effective_token(n)), stop_bound)


def hold_range(fault, n, default):
    """How long a fault stays: a long pause lasts 2 to 3 fence delays, the rest `default`."""
    if fault == "long-pause":
        return 2 * fence_delay(n), 3 * fence_delay(n)
    return default


def params(fault, rng, n, groups):
    nodes = list(range(n))
    if fault in ("kill", "pause"):
        return {"node": rng.choice(nodes)}
    if fault == "partition-halves":
        rng.shuffle(nodes)
        return {"minority": sorted(nodes[:rng.randint(1, (n - 1) // 2)])}
    if fault == "isolate-owner":
        return {"group": f"g{rng.randrange(groups)}"}
    if fault == "bridge":
        rng.shuffle(nodes)
        half = (n - 1) // 2
        return {"bridge": nodes[0], "left": sorted(nodes[1:1 + half]), "right": sorted(nodes[1 + half:])}
    if fault == "one-way":
        return {"node": rng.choice(nodes), "direction": rng.choice(["deaf", "mute"])}
    if fault == "loss":
        return {"node": rng.choice(nodes), "percent": rng.choice([20, 30, 40])}
    group = {"group": f"g{rng.randrange(groups)}"}
    if fault == "resource-fail":
        return dict(group, how=rng.choice(["exit", "kill", "close_port"]), resource=rng.choice(SIBLINGS))
    if fault in ("slow-start", "term-during-start"):
        return dict(group, seconds=round(rng.uniform(2.0, 8.0), 1))
    if fault == "stop-ignores-term":
        return dict(group, seconds=round(rng.uniform(1.0, 6.0), 1))
    if fault in ("stop-hangs", "heartbeat-cut", "raft-cut", "long-pause"):
        return group
    return {}


def generate(scenario, seed, duration, nodes=None, groups=3):
    """[{"at", "fault", "hold", "params"}], `at` in seconds from the start of the run."""
    n = nodes or scenario.nodes
    if n < 3:
        raise ScheduleError("chaos needs at least 3 nodes (a minority must be possible)")
    rng = random.Random(f"{scenario.name}:{seed}:{duration}:{n}")
    steps, t = [], WARMUP
    kinds = list(scenario.faults)
    holds, recover = (FIXED_HOLD, FIXED_RECOVER) if scenario.fixed else (HOLD, RECOVER)
    while True:
        if scenario.fixed:
            if len(steps) == len(kinds):
                break
            fault = kinds[len(steps)]
        else:  # drawn among the kinds whose shortest hold still fits (a long pause may not)
            fits = [k for k in kinds if t + hold_range(k, n, holds)[0] + recover[0] <= duration]
            if not fits:
                break
            fault = rng.choice(fits)
        hold = round(rng.uniform(*hold_range(fault, n, holds)), 2)
        if t + hold + recover[0] > duration:
            if scenario.fixed:
                need = WARMUP + len(kinds) * (holds[1] + recover[1])
                raise ScheduleError(f"scenario {scenario.name} needs a duration of at least {need:.0f} s")
            break
        steps.append({"at": round(t, 2), "fault": fault, "hold": hold, "params": params(fault, rng, n, groups)})
        t += hold + rng.uniform(*recover)
    return steps
