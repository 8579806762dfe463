"""Each node's own view (Node.status), asked of every node every `period` seconds and recorded
as `sample` records: what the quorum-truth checker and the timeline read."""
import asyncio
import time

from clusterd.client import AsyncClient

FIELDS = ("is_quorate", "leader", "live_hosts", "raft_state", "term", "commit_index", "state_hash",
          "state_index", "ready")


class Sampler:
    def __init__(self, cluster, history, nemesis=None, period=0.5, timeout=1.5):
        self.cluster, self.history, self.nemesis = cluster, history, nemesis
        self.period, self.timeout = period, timeout
        self.nodes = {n["name"]: n["api"] for n in cluster.meta()["nodes"]}
        self.creds = cluster.credentials()
        self.clients = {}
        self.round = 0

    async def ask(self, name, kind="sample"):
        t = time.monotonic()
        rec = {"node": name, "reachable": False, "round": self.round, "pid": self.cluster.pid(name)}
        if rec["pid"] is not None:
            c = self.clients.get(name)
            if c is None:
                c = self.clients[name] = AsyncClient(self.nodes[name], self.creds["user"], self.creds["password"],
                                                     timeout=self.timeout)
            try:
                st = await asyncio.wait_for(c.Node.status(), self.timeout + 0.5)
                rec.update({k: st.get(k) for k in FIELDS}, reachable=True)
            except Exception as e:  # any failure: the node did not answer this round
                rec["error"] = type(e).__name__
                await self.clients.pop(name).close()
        rec = self.history.add(kind, t=t, done=time.monotonic(), **rec)
        if self.nemesis is not None and kind == "sample":
            self.nemesis.latest[name] = rec
        return rec

    async def sample_round(self, kind="sample"):
        self.round += 1
        return await asyncio.gather(*(self.ask(n, kind) for n in self.nodes))

    async def run(self, stop):
        """Sample until `stop` (an asyncio.Event) is set."""
        while not stop.is_set():
            started = time.monotonic()
            await self.sample_round()
            try:
                await asyncio.wait_for(stop.wait(), max(0.05, self.period - (time.monotonic() - started)))
            except asyncio.TimeoutError:
                pass

    async def close(self):
        for c in self.clients.values():
            await c.close()
        self.clients.clear()
