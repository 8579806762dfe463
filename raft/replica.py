"""A pysyncobj replica of one state machine, driven from asyncio.

The state is plain data (dicts, lists, str, int, float, bool, None, bytes). Commands are plain
data too; they travel msgpack-encoded and are applied by a deterministic apply(state, command)
that the owner supplies. Nothing of ours is ever pickled: pysyncobj only ever sees bytes.

submit() coalesces every command handed to it in the same event-loop turn into one log entry
(pysyncobj's own batching is off), so a lone command is sent at once and a burst shares one
entry and one msync.
"""
import asyncio
import logging
import os
import threading
import time

import msgpack
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated

from . import durability, rules

log = logging.getLogger("clusterd.raft")

# One log entry holds at most this much; a single command at most MAX_COMMAND_BYTES. pysyncobj
# splits an entry of appendEntriesBatchSizeBytes or more into chunks and labels the last one by
# the wrong length (some sizes left a follower's tick failing), so that size is set well above.
MAX_ENTRY_BYTES = 1024 * 1024
MAX_COMMAND_BYTES = MAX_ENTRY_BYTES - 16
_ARRAY = msgpack.Packer()
_FAIL_NAMES = {v: k for k, v in vars(FAIL_REASON).items() if k.isupper()}


_TIMEOUT = object()  # the error of a command whose deadline passed before its commit


def _expire(fut):
    if not fut.done():
        fut.set_result((None, _TIMEOUT))


class ReplicaError(Exception):
    """A command was not committed before its deadline (it may still commit later), or, with
    reason COMMAND_TOO_LARGE, refused before anything was sent."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def unpack(raw):
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


def snapshot(state, schema):
    """A snapshot's bytes: the state with the version of its shape."""
    return pack({"schema": schema, "state": state})


def load_snapshot(data, upgrade):
    """The state of a snapshot, through upgrade(state, schema); a snapshot from before the
    version was kept is the bare state, schema 0."""
    loaded = unpack(data)
    if isinstance(loaded, dict) and loaded.keys() == {"schema", "state"}:
        return upgrade(loaded["state"], loaded["schema"])
    return upgrade(loaded, 0)


def _as_is(state, _schema):
    return state


class _Database(SyncObjConsumer):
    """The replicated part. Everything set before super().__init__() stays out of snapshots."""

    def __init__(self, apply, state, on_applied, schema, upgrade):
        self.lock = threading.RLock()
        self._apply = apply
        self._on_applied = on_applied
        self._schema = schema
        self._upgrade = upgrade
        self.state = state
        super().__init__()

    @replicated
    def apply_batch(self, blob):
        # Runs on the tick thread, once per committed entry. It must never raise: pysyncobj
        # would apply the entry again.
        try:
            commands = unpack(blob)
        except Exception:
            log.exception("undecodable log entry skipped")
            return pack([])
        results = []
        with self.lock:
            for command in commands:
                try:
                    results.append(self._apply(self.state, command))
                except Exception as exc:  # a bug in apply; every replica hits it the same way
                    log.exception("apply failed for %r", command)
                    results.append({"error": ["INTERNAL_ERROR", None, repr(exc)]})
        if self._on_applied is not None:
            try:
                self._on_applied(commands, results)
            except Exception:
                log.exception("on_applied hook failed")
        return pack(results)

    def _serialize(self):
        with self.lock:
            return snapshot(self.state, self._schema)

    def _deserialize(self, data):
        state = load_snapshot(data, self._upgrade)  # a snapshot it cannot read raises before any change
        with self.lock:
            self.state = state


def raft_conf(token_timeout, data_dir, password, bind_address):
    """Raft timing derived from the token so that leadership follows membership."""
    t = float(token_timeout)
    return SyncObjConf(
        password=password,
        bindAddress=bind_address,
        journalFile=os.path.join(data_dir, "raft.journal"),
        fullDumpFile=os.path.join(data_dir, "raft.dump"),
        dynamicMembershipChange=True,
        appendEntriesUseBatch=False,
        appendEntriesBatchSizeBytes=2 * MAX_ENTRY_BYTES,  # never reached: no chunking (see above)
        raftMinTimeout=0.3 * t,
        raftMaxTimeout=0.8 * t,  # wide enough that nodes started together rarely split the vote
        appendEntriesPeriod=0.075 * t,  # pysyncobj wants raftMinTimeout > 3 x this
        leaderFallbackTimeout=t,
        connectionTimeout=max(3.5, 4 * t),
        connectionRetryTime=min(1.0, t),
        useFork=False,
        logCompactionMinEntries=20000,
        logCompactionMinTime=60,
        commandsQueueSize=200000,
    )


class Replica:
    def __init__(self, *, self_addr, partners, data_dir, password, token_timeout, apply, state,
                 on_applied=None, schema=0, upgrade=_as_is):
        """`schema`: the version of the state's shape, kept in every snapshot; `upgrade(state,
        schema)` turns a loaded snapshot's state into the current shape (or raises)."""
        if not password:
            raise ValueError("a cluster token is required: the Raft channel is never unencrypted")
        durability.install()
        rules.install()
        os.makedirs(data_dir, exist_ok=True)
        self.token_timeout = float(token_timeout)
        self._db = _Database(apply, state, on_applied, schema, upgrade)
        self._obj = SyncObj(self_addr, list(partners),
                            raft_conf(token_timeout, data_dir, password, self_addr),
                            consumers=[self._db])
        self._pending = []
        self._flush_scheduled = False
        self._loop = None
        self._last_ping = 0.0
        self._obj.addOnTickCallback(self._keep_links_warm)

    # -- reads -------------------------------------------------------------------------------
    def read(self, fn):
        """Call fn(state) under the apply lock; fn must copy out what it keeps."""
        with self._db.lock:
            return fn(self._db.state)

    def ready(self):
        return self._obj.isReady()

    def tick_thread_alive(self):
        thread = getattr(self._obj, "_SyncObj__thread", None)
        return thread is None or thread.is_alive()

    def status(self):
        s = self._obj.getStatus()
        leader = s.get("leader")
        return {
            "self": str(s["self"].id if hasattr(s["self"], "id") else s["self"]),
            "state": {0: "follower", 1: "candidate", 2: "leader"}.get(s["state"], str(s["state"])),
            "leader": leader.id if leader is not None else None,
            "term": s["raft_term"],
            "commit_index": s["commit_idx"],
            "last_applied": s["last_applied"],
            "log_len": s["log_len"],
            "ready": self._obj.isReady(),
        }

    def leader(self):
        """The Raft address of the current leader, or None."""
        leader = self._obj._getLeader()
        return leader.id if leader is not None else None

    def last_applied(self):
        """The index of the last entry applied here: changes whenever the state does."""
        return self._obj.raftLastApplied

    def is_leader(self):
        return self._obj._isLeader()

    def lease_state(self):
        """(term, leader, leader_ready, last_applied) for the heartbeat thread, read in that
        order: leader_ready once this leader has applied its own term's first entry (the no-op
        pysyncobj appends on election), so its state holds every entry committed before."""
        term = self._obj.raftCurrentTerm
        leader = self._obj._isLeader()
        noop = getattr(self._obj, "_SyncObj__noopIDx", None)
        applied = self._obj.raftLastApplied
        return term, leader, leader and noop is not None and applied >= noop, applied

    # -- writes ------------------------------------------------------------------------------
    async def submit(self, command, timeout=5.0):
        """Commit one command; return apply's result. Retries until the deadline; the command
        must carry its own request id so that apply drops a second copy."""
        deadline = time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        while True:
            fut = self._enqueue(command)
            # a plain timer on the future: cheaper than wait_for(shield(...)) for every command
            timer = loop.call_later(max(deadline - time.monotonic(), 0.001), _expire, fut)
            try:
                result, err = await fut
            finally:
                timer.cancel()
            if err == FAIL_REASON.SUCCESS:
                return result
            reason = "TIMEOUT" if err is _TIMEOUT else _FAIL_NAMES.get(err, str(err))
            if err is _TIMEOUT or time.monotonic() + 0.05 >= deadline:
                raise ReplicaError(reason)
            await asyncio.sleep(0.05)

    def _enqueue(self, command):
        raw = pack(command)
        if len(raw) > MAX_COMMAND_BYTES:
            raise ReplicaError("COMMAND_TOO_LARGE")
        loop = asyncio.get_running_loop()
        self._loop = loop
        fut = loop.create_future()
        self._pending.append((raw, fut))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self):
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        batch, size = [], 0
        for raw, fut in pending:
            if batch and size + len(raw) > MAX_ENTRY_BYTES:
                self._send(batch)
                batch, size = [], 0
            batch.append((raw, fut))
            size += len(raw)
        if batch:
            self._send(batch)

    def _send(self, batch):
        loop = self._loop
        futures = [fut for _, fut in batch]
        blob = b"".join([_ARRAY.pack_array_header(len(batch))] + [raw for raw, _ in batch])

        def done(res, err):  # tick thread
            def resolve():
                results = unpack(res) if err == FAIL_REASON.SUCCESS else None
                for i, fut in enumerate(futures):
                    if not fut.done():
                        fut.set_result((results[i], err) if results is not None else (None, err))
            try:
                loop.call_soon_threadsafe(resolve)
            except RuntimeError:  # loop closed during shutdown
                pass

        self._db.apply_batch(blob, callback=done)

    def _keep_links_warm(self):
        # Followers never talk to each other, so pysyncobj closes their idle links and the
        # first vote request after a leader dies is lost. A tiny message keeps them open.
        now = time.monotonic()
        if now - self._last_ping < self.token_timeout / 4:
            return
        self._last_ping = now
        transport = self._obj._SyncObj__transport
        for node in list(self._obj._SyncObj__otherNodes):
            transport.send(node, {"type": "keepalive"})

    # -- membership --------------------------------------------------------------------------
    async def change_membership(self, action, addr, timeout=10.0):
        """Add or remove one Raft member; returns when the change is committed."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def done(res, err):
            def resolve():
                if not fut.done():
                    fut.set_result(err)
            loop.call_soon_threadsafe(resolve)

        call = self._obj.addNodeToCluster if action == "add" else self._obj.removeNodeFromCluster
        call(addr, callback=done)
        err = await asyncio.wait_for(fut, timeout)
        if err != FAIL_REASON.SUCCESS:
            raise ReplicaError(_FAIL_NAMES.get(err, str(err)))

    def close(self):
        self._obj.destroy()

