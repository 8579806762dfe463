"""One chaos run, end to end: a fresh cluster in its own temporary dir, groups with witnessed
resources, workload + sampler + the fault schedule, heal, convergence, final state, checkers,
report. Whatever happens (an error, Ctrl-C), every fault is healed and the cluster destroyed."""
import asyncio
import json
import os
import shutil
import tempfile
import time

from .. import netns
from ..launcher import LocalCluster
from ..witness import read_witness
from . import checkers, history, report, schedule
from .nemesis import Nemesis
from .sampler import Sampler
from .schedule import TOKEN_COEFFICIENT, TOKEN_TIMEOUT, effective_token
from .testcluster import GROUPS, final_state, make_witnessed_groups, remove
from .verdicts import CONVERGE_BOUND, evaluate
from .workload import OP_TIMEOUT, Workload, move_supported



class ChaosError(Exception):
    pass


def missing_capability(scenario):
    """Why this machine cannot run the scenario, or None."""
    if not scenario.needs_root:
        return None
    caps = netns.capabilities()
    if not caps["root"]:
        return f"scenario {scenario.name} cuts the network: it needs root (not root)"
    if not caps["netns"]:
        return f"scenario {scenario.name} needs network namespaces (`ip netns add` failed)"
    if not caps["nft"]:
        return f"scenario {scenario.name} needs nftables (`nft` not found)"
    return None


def run(scenario, seed, duration, report_dir, nodes=None, tolerance=3.0, say=print, fence="process"):
    """Run a scenario; write the report into report_dir; return the results dict.

    fence "process" (the local launcher's): the leader kills a lost node's daemon and resources.
    fence "watchdog": it waits the fence delay, and the lost node must stop its resources itself,
    also when its daemon was killed, paused or hung (the node's own watchdog, the keeper)."""
    n = nodes or scenario.nodes
    steps = schedule.generate(scenario, seed, duration, n, GROUPS)
    why = missing_capability(scenario)
    if why:
        raise ChaosError(why)
    try:
        os.makedirs(report_dir, exist_ok=True)
    except OSError as e:
        raise ChaosError(f"cannot make the report dir {report_dir}: {e.strerror or e}") from None
    paths = {k: os.path.join(report_dir, f) for k, f in
             (("history", "history.jsonl"), ("witness", "witness.jsonl"), ("final", "final.json"),
              ("control", "control"))}
    for p in paths.values():
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
    hist = history.History(paths["history"])
    cluster = LocalCluster(tempfile.mkdtemp(prefix="cd-chaos-", dir="/tmp"))
    began = time.monotonic()
    nemesis = None
    try:
        say(f"chaos {scenario.name} seed {seed}: {n} nodes, {len(steps)} faults over {duration} s, "
            f"{fence} fence, cluster in {cluster.dir}")
        cluster.create(n, TOKEN_TIMEOUT, TOKEN_COEFFICIENT, xapi=False, use_netns=scenario.needs_root,
                       settings={"fence_agent": fence})
        for name in [x["name"] for x in cluster.meta()["nodes"]]:
            cluster.start(name)
        cluster.wait_quorate(60)
        nemesis = Nemesis(cluster, hist, paths["witness"], paths["control"])
        nemesis.resources = make_witnessed_groups(cluster, paths["witness"], paths["control"])
        say(f"quorate, {GROUPS} groups online; running the schedule")
        final, timing = asyncio.run(_run(cluster, hist, nemesis, steps, duration, seed, say))
    finally:
        if nemesis is not None:
            try:
                nemesis.heal_all()
            except Exception as e:  # keep going: the cluster must still be destroyed
                say(f"heal failed: {e}")
        hist.close()
        remove(cluster)
    with open(paths["final"], "w") as f:
        json.dump(final, f, indent=2, sort_keys=True)
    results = evaluate(history.read(paths["history"]), read_witness(paths["witness"]), final,
                       names=[f"node{i + 1}" for i in range(n)], bound=effective_token(n) + tolerance,
                       timing=timing)
    results.update(scenario=scenario.name, seed=seed, duration=duration, nodes=n, schedule=steps,
                   wall_seconds=round(time.monotonic() - began, 1), tolerance=tolerance,
                   fence=fence)
    report.write(report_dir, results, history.read(paths["history"]), read_witness(paths["witness"]))
    return results


async def _run(cluster, hist, nemesis, steps, duration, seed, say):
    stop_work, stop_sampling = asyncio.Event(), asyncio.Event()
    sampler = Sampler(cluster, hist, nemesis)
    move = await move_supported(cluster)
    hist.add("note", what="move supported" if move else "move unsupported")
    work = Workload(cluster, hist, [f"g{i}" for i in range(GROUPS)], seed, move=move)
    t0 = time.monotonic()
    hist.add("note", what="start", t=t0)
    sampling = asyncio.ensure_future(sampler.run(stop_sampling))
    working = asyncio.ensure_future(work.run(stop_work))
    try:
        for step in steps:
            await asyncio.sleep(max(0.0, t0 + step["at"] - time.monotonic()))
            rec = await asyncio.to_thread(nemesis.start, step)
            say(f"  {time.monotonic() - t0:5.1f} s  {step['fault']} {_describe(rec['params'])}")
            try:
                await asyncio.sleep(step["hold"])
            finally:
                await asyncio.to_thread(nemesis.stop, rec)
            say(f"  {time.monotonic() - t0:5.1f} s  healed {step['fault']}")
        await asyncio.sleep(max(0.0, t0 + duration - time.monotonic()))
    finally:
        stop_work.set()
        await asyncio.wait([working], timeout=OP_TIMEOUT * 5)  # ops in flight end by their own timeouts
        working.cancel()
        if working.done() and not working.cancelled() and working.exception():
            hist.add("note", what=f"workload error: {working.exception()!r}")
            say(f"  the workload broke off: {working.exception()!r}")
        await asyncio.to_thread(nemesis.heal_all)
    healed = time.monotonic()
    hist.add("note", what="healed", t=healed)
    converged = await converge(sampler, healed)
    say(f"  {time.monotonic() - t0:5.1f} s  " + (f"converged {converged['seconds']} s after the heal"
                                                if converged["valid"] else "did NOT converge"))
    stop_sampling.set()
    await sampling
    await sampler.close()
    final = await asyncio.to_thread(final_state, cluster)
    return final, {"t0": t0, "healed": healed, "end": time.monotonic()}


async def converge(sampler, healed):
    """Ask every node for its state hash until they agree (two rounds in a row) or the bound."""
    names = list(sampler.nodes)
    samples, agreed = [], 0
    while time.monotonic() - healed < CONVERGE_BOUND + 5:
        samples += await sampler.sample_round(kind="converge")
        verdict = checkers.convergence(samples[-len(names):], names, healed, CONVERGE_BOUND)
        agreed = agreed + 1 if verdict["valid"] else 0
        if agreed >= 2:
            break
        await asyncio.sleep(0.5)
    return checkers.convergence(samples, names, healed, CONVERGE_BOUND)


def _describe(params):
    shown = {k: v for k, v in params.items() if k in ("target", "sides", "minority", "direction", "percent",
                                                       "group", "owner", "skipped", "bridge", "how", "resource", "seconds")}
    return " ".join(f"{k}={v}" for k, v in shown.items())


