"""Faults applied to a running local cluster, each recorded in the history, each healed.

kill, pause, long-pause and term-during-start are signals to a daemon (any cluster); the
resource faults are instructions to the test resources, through their control files
(testres.py); the others are nftables cuts on the network-namespace testbed (root). A cut is
recorded with the directed (src, dst) pairs it drops ("cuts", heartbeats included) and the
nodes it leaves hearing less than a quorum ("victims"), which is what the quorum-truth checker
and the failover times need; a Raft-only cut leaves the heartbeats, so its pairs are recorded
as "raft_cuts" instead.
"""
import itertools
import json
import os
import signal
import time

from .. import netns
from ..witness import read_witness
from . import checkers
from .scenarios import RESOURCE_FAULTS
from .testcluster import control_path

ALIVE = 1.0  # a process whose last witness line is this recent (seconds) runs now
START_WAIT = 15.0  # term-during-start: how long to wait for the start it interrupts


class NemesisError(Exception):
    pass


class Nemesis:
    def __init__(self, cluster, history, witness=None, control_dir=None):
        self.cluster, self.history, self.witness, self.control_dir = cluster, history, witness, control_dir
        self.names = [n["name"] for n in cluster.meta()["nodes"]]
        self.bed = cluster.testbed()
        self.paused = {}  # name -> pid we sent SIGSTOP
        self.ids = itertools.count(1)
        self.latest = {}  # name -> the latest sample (set by the sampler), to find the leader
        self.resources = {}  # group name -> its first resource's id

    # -- resolving what the running cluster knows --------------------------------------------
    def leader(self):
        votes = [s.get("leader") for s in self.latest.values() if s.get("reachable") and s.get("leader")]
        return max(set(votes), key=votes.count) if votes else None

    def owner(self, group):
        """Where the group's resources run now, by their own witness lines (the truth), else None."""
        if not self.witness:
            return None
        now = time.monotonic()
        running = [x for x in checkers.lifetimes(read_witness(self.witness))
                   if x["group"] == group and not x["ended"] and now - x["last"] < ALIVE]
        return max(running, key=lambda x: x["start"])["node"] if running else None

    def _owner_of(self, p):
        """The owner of the drawn group, else of the first group running anywhere; into p."""
        for group in [p.get("group")] + sorted(self.resources):
            owner = self.owner(group)
            if owner in self.names:
                p.update(group=group, owner=owner)
                return owner
        p["owner"] = None
        return None

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
        if step["fault"] in ("isolate-owner", "heartbeat-cut", "raft-cut"):
            # the drawn group's owner, else the first one running now; nothing runs: node1
            owner = self._owner_of(p)
            return self._isolate(self.names.index(owner) if owner else 0)
        return None

    # -- faults ------------------------------------------------------------------------------
    def start(self, step):
        """Put the fault in place (blocking: run it in a thread from asyncio); return its record."""
        kind, p = step["fault"], dict(step["params"])
        rec = {"fault": kind, "id": next(self.ids), "params": p}
        if kind in ("kill", "pause"):
            self._signal(self.names[p["node"]], signal.SIGKILL if kind == "kill" else signal.SIGSTOP, p)
        elif kind == "long-pause":
            owner = self._owner_of(p)
            self._signal(owner or self.names[0], signal.SIGSTOP, p)
        elif kind == "term-during-start":
            self._term_during_start(p)
        elif kind in RESOURCE_FAULTS:
            self._resource_fault(kind, p)
        else:
            self._require_bed(kind)
            cuts = self._cuts(step, p)
            if kind == "loss":
                netns.loss(self.bed, p["node"], p["percent"])
                p.update(target=self.names[p["node"]], victims=[])
            else:
                for src, dst in cuts:
                    self._drop(kind, src, dst)
                named = [[self.names[a], self.names[b]] for a, b in cuts]
                q = checkers.quorum_of(len(self.names))
                p.update(victims=[x for x in self.names if len(checkers.heard(x, self.names, named)) < q])
                p["raft_cuts" if kind == "raft-cut" else "cuts"] = named
        self.history.add("nemesis", phase="start", **rec)
        return rec

    def _drop(self, kind, src, dst):
        """Drop what src sends dst: everything, or only its heartbeats (UDP) or its Raft (TCP)."""
        if kind not in ("heartbeat-cut", "raft-cut"):
            return netns.drop(self.bed, src, dst)
        service, proto = ("heartbeat", "udp") if kind == "heartbeat-cut" else ("raft", "tcp")
        nodes = self.cluster.meta()["nodes"]
        port = [int(nodes[i][service].rpartition(":")[2]) for i in (src, dst)]
        netns.drop_port(self.bed, src, dst, proto, *port)

    def _signal(self, name, sig, p):
        """Signal a node's daemon (recorded: target, victims); a SIGSTOP is undone at the heal."""
        pid = self.cluster.pid(name)
        if pid is None:
            p["skipped"] = f"{name} was not running"
        else:
            os.kill(pid, sig)
            if sig == signal.SIGSTOP:
                self.paused[name] = pid
        p.update(target=name, victims=[name])

    # -- resource faults: instructions to the test resources (testres.py) ------------------------
    def _control(self, group, faults):
        path = control_path(self.control_dir, group)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(faults, f)
        os.replace(tmp, path)  # a resource polling it reads the old list or the new, never half

    def _resource_fault(self, kind, p):
        """A resource of the owner fails its monitor (resource-fail), or starts slowly after its
        one failure (slow-start), or, while the owner's g-a fails past its restart policy, its
        sibling g-b stops badly (stop-ignores-term, stop-hangs)."""
        if not self.control_dir:
            raise NemesisError(f"the {kind} fault needs the test resources' control dir")
        owner = self._owner_of(p)
        if owner is None:
            p["skipped"] = "the group runs nowhere"
            return
        g, now = p["group"], time.monotonic()
        fails = {"fault": "exit", "code": 1, "node": owner, "resource": f"{g}-a"}
        if kind == "resource-fail":
            fails = {"fault": p["how"], "code": 1, "node": owner, "resource": f"{g}-{p['resource']}"}
            faults = [fails]
        elif kind == "slow-start":  # the running g-a exits once; every start after now is slow
            faults = [dict(fails, before=now), {"fault": "slow_start", "seconds": p["seconds"], "after": now}]
        elif kind == "stop-ignores-term":
            faults = [fails, {"fault": "ignore_term", "seconds": p["seconds"], "resource": f"{g}-b"}]
        else:  # stop-hangs
            faults = [fails, {"fault": "hang_term", "resource": f"{g}-b"}]
        self._control(g, faults)
        # the owner loses the group (failover times are measured from it), except to a slow start
        p.update(target=owner, victims=[] if kind == "slow-start" else [owner], control=faults)

    def _term_during_start(self, p):
        """A slow start of the owner's g-a (it exits once, every start after is slow), then
        SIGTERM of the daemon of the node where the new start appears, while it starts."""
        self._resource_fault("slow-start", p)
        if p.get("skipped"):
            return
        began = time.monotonic()
        while time.monotonic() - began < START_WAIT:
            starts = [x for x in checkers.lifetimes(read_witness(self.witness))
                      if x["resource"] == f"{p['group']}-a" and x["start"] > began]
            if starts:
                return self._signal(starts[0]["node"], signal.SIGTERM, p)
            time.sleep(0.1)
        p["skipped"] = f"no start of {p['group']}-a within {START_WAIT:g} s"

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
        if kind in ("pause", "long-pause"):
            self._resume(p.get("target"))
        elif p.get("control") is not None:
            self._control(p["group"], [])
        elif kind not in ("kill", "term-during-start") and self.bed:
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
        for group in self.resources if self.control_dir else ():
            self._control(group, [])
        for name in list(self.paused):
            self._resume(name)
        for name in self.names:
            self._start_if_down(name)
        self.history.add("note", what="healed all")
