"""One clusterd node: the replica, membership, sessions and tasks, and the few loops that join them.

Reads come from this node's replica; writes are commands submitted through the log and
refused up front on a node that is not quorate. On the Raft leader, two duties: bootstrap the
cluster database the first time, and commit the membership view whenever it changes.
"""
import asyncio
import contextlib
import logging
import os
import time
import uuid

import psutil

from raft import Replica, ReplicaError

from . import auth, cluster, db, limits, pause, tasks
from .errors import ClusterError
from .lease import RaftView

log = logging.getLogger("clusterd.node")

WRITE_TIMEOUT = 5.0
FENCED_CACHE = 0.01  # seconds the heartbeat thread may use a read of the fence records


async def wake_or_timeout(event, timeout):
    """Wait until `event` is set or `timeout` passes; clear it for the next wait."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        pass
    event.clear()


def new_ref():
    return f"OpaqueRef:{uuid.uuid4()}"


def new_ids():
    return [new_ref(), str(uuid.uuid4())]


class Node:
    def __init__(self, cfg, token):
        self.cfg = cfg
        self.token = token
        self.sessions = auth.Sessions(auth.load_users(cfg.users_file))
        self.tasks = tasks.Tasks()  # the Async.* calls of the XenAPI endpoint
        self.gates = {"api": limits.Gate(), "xapi": limits.Gate()}  # the servers' connection caps
        self.started = time.time()
        self.membership = None  # set by the daemon once the socket is bound
        partners = [m["raft"] for m in cfg.members if m["name"] != cfg.name]
        self.replica = Replica(
            self_addr=cfg.raft, partners=partners, data_dir=cfg.data_dir, password=token,
            token_timeout=cfg.token_timeout, apply=db.apply, state=db.initial_state(),
            on_applied=self._applied, schema=db.SCHEMA_VERSION, upgrade=db.upgrade)
        self.loop = None
        self._membership_lock = None
        # wake-ups, so that a failover does not wait for polling intervals (set in attach):
        # the membership view changed (leader duties), a view or fence was committed
        # (coordinator), a failover was applied (executor)
        self.view_changed = self.coordinate = self.owners_changed = None
        self._hash = None  # the last state_hash() and the index it was computed at
        self._fenced = (float("-inf"), frozenset())  # (read at, nodes a committed fence names)

    def attach(self, loop, membership):
        self.loop = loop
        self.membership = membership
        self._membership_lock = asyncio.Lock()
        self.view_changed, self.coordinate, self.owners_changed = asyncio.Event(), asyncio.Event(), asyncio.Event()
        membership.on_change = lambda _view: loop.call_soon_threadsafe(self.view_changed.set)

    def _applied(self, commands, _results):
        """On pysyncobj's thread, after each applied batch: wake the executor when a group
        changed owner by failover (the other changes wait for its next tick)."""
        if self.loop is not None and any(c.get("op") == "group.failover" for c in commands):
            self.loop.call_soon_threadsafe(self.owners_changed.set)

    # -- the database ------------------------------------------------------------------------
    def read(self, fn):
        if not self.replica.ready():
            raise ClusterError("CLUSTER_NOT_READY")
        return self.replica.read(fn)

    def first_result(self, rid):
        """The result the write of this request id got, or None if none applied (db.first_result)."""
        return self.replica.read(lambda s: db.first_result(s, rid))

    def members(self):
        """The members: from the committed database once bootstrapped, else from config."""
        committed = self.replica.read(lambda s: {n: dict(m) for n, m in s["members"].items()})
        return committed or {m["name"]: dict(m) for m in self.cfg.members}

    async def write(self, op, /, rid=None, **args):
        if not self.replica.ready():
            raise ClusterError("CLUSTER_NOT_READY")
        if not self.membership.view()["is_quorate"]:
            raise ClusterError("CLUSTER_NOT_QUORATE", self.cfg.name)
        command = {"op": op, "rid": rid or str(uuid.uuid4()), "at": time.time(), **args}
        early = self.replica.read(lambda state: db.precheck(state, command))  # a retry's first result first
        if early is not None:
            if "error" in early:
                raise ClusterError.from_wire(early["error"])
            return early["ok"]
        try:
            result = await self.replica.submit(command, timeout=WRITE_TIMEOUT)
        except ReplicaError as e:
            if e.reason == "COMMAND_TOO_LARGE":  # refused before anything was sent
                raise ClusterError("INVALID_VALUE", "the write is larger than one log entry") from None
            raise ClusterError("CLUSTER_WRITE_UNKNOWN", e.reason) from None
        if "error" in result:
            raise ClusterError.from_wire(result["error"])
        return result["ok"]

    # -- status ------------------------------------------------------------------------------
    def status(self):
        r = self.replica.status()
        v = self.membership.view()
        rec = self.replica.read(lambda s: dict(pause.node_record(s, self.cfg.name)))
        return {
            "paused": rec["paused"], "drain_status": rec["drain"],
            "name": self.cfg.name, "pid": os.getpid(), "ready": r["ready"],
            "is_quorate": v["is_quorate"], "live_hosts": v["live_hosts"], "live": v["live"],
            "quorum": v["quorum"], "expected_votes": v["expected_votes"],
            "effective_token": self.membership.effective_token(),
            "raft_state": r["state"], "leader": self._leader_name(r["leader"]),
            "term": r["term"], "commit_index": r["commit_index"], "last_applied": r["last_applied"],
            "raft": self.cfg.raft, "api": self.cfg.api, "xapi": self.cfg.xapi, "uptime": time.time() - self.started,
            "tick_thread_alive": self.replica.tick_thread_alive(),
            "lease": max(0.0, self.lease_deadline() - time.monotonic()),
            "heartbeat_rejected": self.membership.rejected_counts(),
            "connections": {name: gate.stats() for name, gate in self.gates.items()},
            **self.state_hash(),
        }

    def state_hash(self):
        """A hash of the whole database and the index it was applied up to, read together: two
        nodes at the same index hold the same state exactly when the hashes match."""
        def digest(state):
            index = self.replica.last_applied()
            if self._hash is None or self._hash["state_index"] != index:  # computed once per index
                self._hash = {"state_hash": db.state_hash(state), "state_index": index}
            return self._hash
        return dict(self.replica.read(digest))

    def lease_deadline(self) -> float:
        """The time.monotonic() instant until which this node holds its lease: it may run its
        groups only before it (DESIGN.md invariant 3). By round trip (lease.py, docs/timing.md):
        from this node's own send time of a heartbeat that the Raft leader echoed with a grant,
        or the leader's own; 0.0 when it holds none."""
        return self.membership.lease_deadline()

    def raft_view(self) -> RaftView:
        """What membership needs of Raft and the committed fences, for each heartbeat: the term
        and leadership fresh, the fence records at most VIEW_CACHE old (the watchdog fence reads
        its clock start again after every wait, so a grant sent meanwhile is counted)."""
        term, leader, ready, applied = self.replica.lease_state()
        at, fenced = self._fenced
        now = time.monotonic()
        if now - at > FENCED_CACHE:
            fenced = self.replica.read(lambda s: frozenset(
                n for n, f in s["fence"].items() if f.get("status") in ("requested", "fenced")))
            self._fenced = (now, fenced)
        return RaftView(term=term, leader=leader, leader_ready=ready, applied=applied, fenced=fenced)

    def status_leader(self):
        """The current Raft leader's name, or None."""
        return self._leader_name(self.replica.leader())

    async def announce(self):
        """Once ready and quorate: commit this daemon's pid and create time (for fencing)."""
        me = psutil.Process()
        while True:
            await asyncio.sleep(self.cfg.token_timeout / 4)
            if self.replica.ready() and self.membership.view()["is_quorate"]:
                try:
                    await self.write("member.hello", name=self.cfg.name, pid=me.pid, create_time=me.create_time(),
                                     data_dir=self.cfg.data_dir)
                    return
                except ClusterError as e:
                    log.info("hello not committed yet: %s", e)

    def _leader_name(self, addr):
        if addr is None:
            return None
        return next((n for n, m in self.members().items() if m["raft"] == addr), addr)

    # -- leader duties -----------------------------------------------------------------------
    async def leader_duties(self):
        """On the leader: bootstrap once, then keep the committed membership view current."""
        interval = self.cfg.token_timeout / 16
        while True:
            await wake_or_timeout(self.view_changed, interval)
            if not (self.replica.ready() and self.replica.is_leader()):
                continue
            try:
                if not self.replica.read(lambda s: s["bootstrapped"]):
                    await self._bootstrap()
                if not self.replica.read(lambda s: any(g["special"] for g in s["groups"].values())):
                    await self.write("group.create_core", rid="core-group", id=str(uuid.uuid4()), owner=self.cfg.name)
                await self._commit_view()
            except ClusterError as e:
                log.debug("leader duty deferred: %s", e)

    async def _bootstrap(self):
        members = []
        for m in self.cfg.members:
            host_ref, host_uuid = new_ids()
            pif_ref, pif_uuid = new_ids()
            members.append({**m, "votes": m.get("votes", 1), "host_ref": host_ref, "host_uuid": host_uuid,
                            "pif_ref": pif_ref, "pif_uuid": pif_uuid})
        ref, cuuid = new_ids()
        net_ref, net_uuid = new_ids()
        log.info("bootstrapping the cluster database with %d members", len(members))
        await self.write(
            "member.bootstrap", rid="bootstrap", members=members,
            network={"ref": net_ref, "uuid": net_uuid}, ref=ref, uuid=cuuid,
            cluster_stack=cluster.CLUSTER_STACK, pool_auto_join=True,
            token_timeout=self.cfg.token_timeout, token_timeout_coefficient=self.cfg.token_coefficient,
            cluster_config={"token_timeout": str(self.cfg.token_timeout),
                            "token_timeout_coefficient": str(self.cfg.token_coefficient)},
            cluster_host_ids={m["name"]: new_ids() for m in members})

    async def _commit_view(self):
        live = self.membership.view()["live"]
        committed = self.replica.read(lambda s: list(s["view"]["live"]))
        if committed != live:
            await self.write("membership.view", live=live, by=self.cfg.name)
            self.coordinate.set()

    # -- dynamic membership ------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _one_membership_change(self):
        """On the leader only, one change at a time; yields the current members."""
        if not self.replica.is_leader():
            raise ClusterError("NOT_LEADER", self.status()["leader"] or "")
        if self._membership_lock.locked():
            raise ClusterError("MEMBERSHIP_CHANGE_IN_PROGRESS")
        async with self._membership_lock:
            yield self.members()

    async def add_member(self, member):
        """The Raft membership change commits, then the member's record."""
        async with self._one_membership_change() as existing:
            if member["name"] in existing:
                raise ClusterError("INVALID_VALUE", "name", member["name"], message="a member of that name exists")
            if not self.membership.view()["is_quorate"]:
                raise ClusterError("CLUSTER_NOT_QUORATE", self.cfg.name)
            host_ref, host_uuid = new_ids()
            pif_ref, pif_uuid = new_ids()
            record = {**member, "votes": 1, "host_ref": host_ref, "host_uuid": host_uuid,
                      "pif_ref": pif_ref, "pif_uuid": pif_uuid}
            await self._raft_change("add", member["raft"])
            await self.write("member.add", member=record, cluster_host_ids={member["name"]: new_ids()})

    async def remove_member(self, name):
        """The member's record goes, then the Raft membership change commits."""
        async with self._one_membership_change() as existing:
            if name not in existing:
                raise ClusterError("HANDLE_INVALID", "host", name)
            if name == self.cfg.name:
                raise ClusterError("INVALID_VALUE", "name", name, message="the leader cannot remove itself")
            await self.write("member.remove", name=name, agent=self.cfg.fence_agent)
            await self._raft_change("remove", existing[name]["raft"])

    async def _raft_change(self, action, addr):
        try:
            await self.replica.change_membership(action, addr)
        except (ReplicaError, asyncio.TimeoutError) as e:
            raise ClusterError("CLUSTER_WRITE_UNKNOWN", getattr(e, "reason", "TIMEOUT")) from None
