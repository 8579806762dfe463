"""A fault schedule from a seed: the same (scenario, seed, duration, nodes) gives the same
schedule. Faults come one at a time: each is held, healed, and followed by a recovery gap.
What only the running cluster knows (who leads, who runs a group) is resolved when the fault
starts; everything else is drawn here."""
import random

WARMUP = 5.0  # seconds of plain workload before the first fault
HOLD = (6.0, 12.0)  # how long a fault stays
RECOVER = (9.0, 13.0)  # the gap after a heal, for restarts, elections and failovers to settle
FIXED_HOLD, FIXED_RECOVER = (6.0, 9.0), (9.0, 11.0)  # a fixed sequence (smoke) kept short


class ScheduleError(ValueError):
    pass


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
    return {}


def generate(scenario, seed, duration, nodes=None, groups=3):
    """[{"at", "fault", "hold", "params"}], `at` in seconds from the start of the run."""
    n = nodes or scenario.nodes
    if n < 3:
        raise ScheduleError("chaos needs at least 3 nodes (a minority must be possible)")
    rng = random.Random(f"{scenario.name}:{seed}:{duration}:{n}")
    steps, t = [], WARMUP
    kinds = list(scenario.faults)
    hold_range, recover = (FIXED_HOLD, FIXED_RECOVER) if scenario.fixed else (HOLD, RECOVER)
    while True:
        if scenario.fixed:
            if len(steps) == len(kinds):
                break
            fault = kinds[len(steps)]
        else:
            fault = rng.choice(kinds)
        hold = round(rng.uniform(*hold_range), 2)
        if t + hold + recover[0] > duration:
            if scenario.fixed:
                need = WARMUP + len(kinds) * (hold_range[1] + recover[1])
                raise ScheduleError(f"scenario {scenario.name} needs a duration of at least {need:.0f} s")
            break
        steps.append({"at": round(t, 2), "fault": fault, "hold": hold, "params": params(fault, rng, n, groups)})
        t += hold + rng.uniform(*recover)
    return steps
