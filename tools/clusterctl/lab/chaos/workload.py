"""Clients working on the cluster during a run, each pinned to one node. Every invocation and
every completion goes to the history: ok, fail (it certainly did not take effect) or unknown
(timeout, lost connection, CLUSTER_WRITE_UNKNOWN: it may have).

Ops: `write` (a unique key and value into other_config), `cas` and `read` on a few CAS
registers (other_config keys, Cluster.cas_other_config; a read is a CAS that never matches, so
it goes through the log), `online` / `offline` of a group, and
`move` (Group.move(group, None, 0, {})) when the daemon has that method.
"""
import asyncio
import itertools
import random

from clusterd.client import AsyncClient
from clusterd.errors import ClusterError

UNKNOWN_CODES = {"CLUSTER_WRITE_UNKNOWN"}
WEIGHTS = {"write": 2, "cas": 4, "read": 3, "online": 1, "offline": 1, "move": 1}
KEYS_AT_ONCE = 3  # CAS registers in use at a time
OPS_PER_KEY = 100  # then that register is retired and a new one begun (bounds the checker's search)
OP_TIMEOUT = 8.0
NEVER = "chaos: never a value"  # what a read's CAS expects: it never swaps


class Workload:
    def __init__(self, cluster, history, groups, seed, clients=4, max_ops=500, move=False):
        self.cluster, self.history, self.groups = cluster, history, list(groups)
        self.names = [n["name"] for n in cluster.meta()["nodes"]]
        self.seed, self.n_clients, self.max_ops = seed, clients, max_ops
        self.move = move
        self.ids = itertools.count(1)
        self.key_ops = {}  # register key -> ops issued on it
        self.keys = [self._key(i) for i in range(KEYS_AT_ONCE)]
        self.next_key = KEYS_AT_ONCE
        self.ref = None

    @staticmethod
    def _key(i):
        return f"chaos.cas.{i}"

    def register(self, rng):
        """A register to use now; a register past OPS_PER_KEY is swapped for a fresh one."""
        i = rng.randrange(len(self.keys))
        key = self.keys[i]
        self.key_ops[key] = self.key_ops.get(key, 0) + 1
        if self.key_ops[key] >= OPS_PER_KEY:
            self.keys[i] = self._key(self.next_key)
            self.next_key += 1
        return key

    def kinds(self):
        return [k for k in WEIGHTS if k != "move" or self.move]

    async def run(self, stop):
        await asyncio.gather(*(self.client(i, stop) for i in range(self.n_clients)))

    async def client(self, i, stop):
        node = self.names[i % len(self.names)]
        rng = random.Random(f"{self.seed}:client{i}")
        creds = self.cluster.credentials()
        c = AsyncClient(self.cluster.node(node)["api"], creds["user"], creds["password"], timeout=OP_TIMEOUT, retries=2)
        seen = {}  # register -> the last value this client saw (its guess for the next CAS)
        kinds = self.kinds()
        try:
            for seq in range(self.max_ops):
                if stop.is_set():
                    break
                kind = rng.choices(kinds, [WEIGHTS[k] for k in kinds])[0]
                args = self.args(kind, rng, i, seq, seen)
                outcome = await self.perform(c, i, node, kind, args)
                if kind == "cas" and outcome[0] == "ok":
                    seen[args["key"]] = args["new"] if outcome[1]["swapped"] else outcome[1]["value"]
                elif kind == "read" and outcome[0] == "ok":
                    seen.update(outcome[1])
                pause = rng.uniform(0.1, 0.4) if outcome[0] == "ok" else rng.uniform(0.4, 0.8)
                try:
                    await asyncio.wait_for(stop.wait(), pause)
                except asyncio.TimeoutError:
                    pass
        finally:
            await c.close()

    def args(self, kind, rng, i, seq, seen):
        if kind == "write":
            return {"key": f"chaos.w.{i}.{seq}", "value": f"{i}.{seq}"}
        if kind == "cas":
            key = self.register(rng)
            expected = seen.get(key) if rng.random() < 0.8 else rng.choice([None, seen.get(key)])
            return {"key": key, "expected": expected, "new": f"c{i}.{seq}"}
        if kind == "read":
            return {"keys": [self.register(rng)]}
        return {"group": rng.choice(self.groups)}

    async def call(self, c, kind, args):
        if kind in ("write", "cas", "read") and self.ref is None:
            self.ref = (await c.Cluster.get_all())[0]
        if kind == "write":
            return await c.Cluster.add_to_other_config(self.ref, args["key"], args["value"])
        if kind == "cas":
            return await c.Cluster.cas_other_config(self.ref, args["key"], args["expected"], args["new"])
        if kind == "read":  # through the log: a CAS that never matches answers the value (a local
            # read of a follower's replica may lag, and is not meant to be linearizable)
            (key,) = args["keys"]
            return {key: (await c.Cluster.cas_other_config(self.ref, key, NEVER, NEVER))["value"]}
        if kind == "online":
            return await c.Group.online(args["group"])
        if kind == "offline":
            return await c.Group.offline(args["group"])
        return await c.Group.move(args["group"], None, 0, {})

    async def perform(self, c, i, node, kind, args):
        op_id = next(self.ids)
        self.history.add("invoke", id=op_id, process=i, node=node, op=kind, args=args)
        try:
            await asyncio.wait_for(c.connect(), OP_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as e:  # nothing was sent
            self.history.add("fail", id=op_id, process=i, node=node, op=kind, error=f"not connected: {e!r}")
            return "fail", None
        try:
            result = await asyncio.wait_for(self.call(c, kind, args), OP_TIMEOUT * 3)
        except ClusterError as e:
            outcome = "unknown" if e.code in UNKNOWN_CODES else "fail"
            self.history.add(outcome, id=op_id, process=i, node=node, op=kind, error=e.code)
            return outcome, None
        except (OSError, ConnectionError, asyncio.TimeoutError, EOFError) as e:
            await c.close()
            self.history.add("unknown", id=op_id, process=i, node=node, op=kind, error=type(e).__name__)
            return "unknown", None
        self.history.add("ok", id=op_id, process=i, node=node, op=kind, result=result)
        return "ok", result


async def move_supported(cluster):
    """Whether the daemons have Group.move (asked once, of any node that answers)."""
    creds = cluster.credentials()
    for n in cluster.meta()["nodes"]:
        try:
            async with AsyncClient(n["api"], creds["user"], creds["password"], timeout=5) as c:
                await c.Group.move("chaos-probe-no-such-group", None, 0, {})
            return True
        except ClusterError as e:
            return e.code != "MESSAGE_METHOD_UNKNOWN"
        except (OSError, asyncio.TimeoutError):
            continue
    return False
