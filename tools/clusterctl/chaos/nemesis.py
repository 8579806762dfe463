"""Faults applied to a running local cluster, each recorded in the history, each healed.

kill and pause are signals to a daemon (any cluster); the others are nftables cuts on the
network-namespace testbed (root). A cut is recorded with the directed (src, dst) pairs it
drops ("cuts") and the nodes it leaves hearing less than a quorum ("victims"), which is what
the quorum-truth checker and the failover times need.
"""
import itertools
import os
import signal
import time

from .. import netns
from ..checkers import read_witness, running_intervals
from . import checkers


class NemesisError(Exception):
    pass


class Nemesis:
    def __init__(self, cluster, history, witness=None):
        self.cluster, self.history, self.witness = cluster, history, witness
        self.names = [n["name"] for n in cluster.meta()["nodes"]]
        self.bed = cluster.testbed()
        self.paused = {}  # name -> pid we sent SIGSTOP
        self.ids = itertools.count(1)
        self.latest = {}  # name -> the latest sample (set by the sampler), to find the leader
        self.resources = {}  # group name -> its resource's id (as the witness names it)

    # -- resolving what the running cluster knows --------------------------------------------
    def leader(self):
        votes = [s.get("leader") for s in self.latest.values() if s.get("reachable") and s.get("leader")]
        return max(set(votes), key=votes.count) if votes else None

    def owner(self, group):
        """Where the group's resource runs now, by the witness (the truth), else None."""
        if not self.witness:
            return None
        ivs = running_intervals(read_witness(self.witness)).get(self.resources.get(group), [])
        running = [iv for iv in ivs if iv[3] is None]
        return running[-1][0] if running else None

    def _isolate(self, index):
        others = [i for i in range(len(self.names)) if i != index]
        return [[index], others]

    def _sides(self, step, p):
        """The sides of a partition fault, as node index lists (None: not a partition); what it
        resolved (the owner found) goes into p, the fault's recorded params."""
        n = len(self.names)
        if step["fault"] == "partition-halves":
            return [p["minority"], [i for i in range(n) if i not in p["minority"]]]
        if step["fault"] == "isolate-leader":
            leader = self.leader()
            return self._isolate(self.names.index(leader) if leader in self.names else 0)
        if step["fault"] == "isolate-owner":  # the drawn group, else the first one running now
            for group in [p["group"]] + sorted(self.resources):
                owner = self.owner(group)
                if owner in self.names:
                    p.update(group=group, owner=owner)
                    return self._isolate(self.names.index(owner))
            p["owner"] = None  # nothing runs anywhere: isolate node1
            return self._isolate(0)
        return None

    # -- faults ------------------------------------------------------------------------------
    def start(self, step):
        """Put the fault in place (blocking: run it in a thread from asyncio); return its record."""
        kind, p = step["fault"], dict(step["params"])
        rec = {"fault": kind, "id": next(self.ids), "params": p}
        if kind in ("kill", "pause"):
            name = self.names[p["node"]]
            pid = self.cluster.pid(name)
            if pid is None:
                p["skipped"] = f"{name} was not running"
            else:
                os.kill(pid, signal.SIGKILL if kind == "kill" else signal.SIGSTOP)
                if kind == "pause":
                    self.paused[name] = pid
            p.update(target=name, victims=[name])
        else:
            self._require_bed(kind)
            cuts = self._cuts(step, p)
            if kind == "loss":
                netns.loss(self.bed, p["node"], p["percent"])
                p.update(target=self.names[p["node"]], victims=[])
            else:
                for src, dst in cuts:
                    netns.drop(self.bed, src, dst)
                named = [[self.names[a], self.names[b]] for a, b in cuts]
                q = checkers.quorum_of(len(self.names))
                p.update(cuts=named, victims=[x for x in self.names
                                              if len(checkers.heard(x, self.names, named)) < q])
        self.history.add("nemesis", phase="start", **rec)
        return rec

    def _cuts(self, step, p):
        n = len(self.names)
        sides = self._sides(step, p)
        if sides:
            p["sides"] = [[self.names[i] for i in s] for s in sides]
            return [(a, b) for s, t in itertools.permutations(sides, 2) for a in s for b in t]
        if step["fault"] == "bridge":
            left, right = p["left"], p["right"]
            return [(a, b) for a in left for b in right] + [(b, a) for a in left for b in right]
        if step["fault"] == "one-way":
            p["target"] = self.names[p["node"]]
            others = [i for i in range(n) if i != p["node"]]
            return [(o, p["node"]) for o in others] if p["direction"] == "deaf" else [(p["node"], o) for o in others]
        return []

    def _require_bed(self, kind):
        if not self.bed:
            raise NemesisError(f"the {kind} fault needs the network-namespace testbed (root and nftables)")

    def stop(self, rec):
        """Heal one fault; then every daemon not running (killed by us, or by a fence while it
        was cut off) is started again, so that the next fault meets a whole cluster."""
        kind, p = rec["fault"], rec["params"]
        healing = time.monotonic()  # the fault may end from here on: that is its recorded stop
        if kind == "pause":
            self._resume(p["target"])
        elif kind != "kill" and self.bed:
            netns.heal(self.bed)
        for name in self.names:
            self._start_if_down(name)
        self.history.add("nemesis", phase="stop", fault=kind, id=rec["id"], t=healing)

    def _resume(self, name):
        pid = self.paused.pop(name, None)
        if pid:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def _start_if_down(self, name):
        if self.cluster.pid(name) is None:
            self.cluster.start(name)
            self.history.add("note", what="started", node=name)

    def heal_all(self):
        """Everything undone: links and rules, paused daemons resumed, dead ones started
        (a fence may have killed a node that was cut off). Safe to call more than once."""
        if self.bed:
            netns.heal(self.bed)
        for name in list(self.paused):
            self._resume(name)
        for name in self.names:
            self._start_if_down(name)
        self.history.add("note", what="healed all")
