"""A local cluster on 127.0.0.1: configs, credentials, and the daemons' processes.

Layout of a cluster dir:
    cluster.json             the launcher's record: nodes, their addresses and files
    cluster.token            the cluster token (0600)
    users.json               hashed users: admin (pool-admin), operator, reader
    admin.json               the pool-admin's credentials {"user", "password"} (0600)
    credentials.json         every user's credentials, for tools and tests (0600)
    NODE/node.toml           the node's config;  NODE/data/  its journal and snapshots
    NODE/clusterd.log        its log;  NODE/clusterd.pid  the pid the launcher started
"""
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

import psutil
import tomli_w

from clusterd import auth
from clusterd.client import AsyncClient

from . import netns

USERS = (("admin", "pool-admin"), ("operator", "pool-operator"), ("reader", "read-only"))


class LauncherError(Exception):
    pass


def default_dir():
    if os.environ.get("CLUSTERD_DIR"):
        return os.environ["CLUSTERD_DIR"]
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "clusterd", "local")


def free_ports(n_tcp, n_udp, host="127.0.0.1"):
    """Ports the kernel hands out now; held together so that none repeats."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n_tcp)]
    socks += [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n_udp)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class LocalCluster:
    def __init__(self, directory=None):
        self.dir = os.path.abspath(directory or default_dir())
        self.meta_path = os.path.join(self.dir, "cluster.json")

    # -- files -------------------------------------------------------------------------------
    def exists(self):
        return os.path.exists(self.meta_path)

    def meta(self):
        try:
            with open(self.meta_path) as f:
                return json.load(f)
        except FileNotFoundError:
            raise LauncherError(f"no cluster in {self.dir}: run `clusterctl up` first") from None

    def _save(self, meta):
        tmp = self.meta_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(meta, f, indent=2)
        os.replace(tmp, self.meta_path)

    def node(self, name):
        for n in self.meta()["nodes"]:
            if n["name"] == name:
                return n
        names = ", ".join(n["name"] for n in self.meta()["nodes"])
        raise LauncherError(f"no node {name!r} in {self.dir} (nodes: {names})")

    def credentials(self, user="admin"):
        with open(os.path.join(self.dir, "credentials.json")) as f:
            return json.load(f)[user]

    def create(self, n_nodes, token_timeout=1.0, token_coefficient=0.65, xapi=True, use_netns=False, settings=None):
        """Write the cluster's files; with use_netns, each node gets a network namespace.
        `settings`: more node configuration (config.py's fence_* keys, no_quorum_policy); the
        fence agent is process unless it says otherwise, since the nodes share this host."""
        bed = None
        if use_netns:
            netns.require()
            bed = netns.plan(self.dir, n_nodes)
        if self.exists():
            raise LauncherError(f"a cluster already exists in {self.dir}")
        if n_nodes < 1:
            raise LauncherError("a cluster needs at least one node")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o700)
        token_file = os.path.join(self.dir, "cluster.token")
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
        creds = {user: {"user": user, "password": secrets.token_urlsafe(18), "role": role} for user, role in USERS}
        auth.write_private_json(os.path.join(self.dir, "users.json"),
                                {"users": {u: auth.make_user(c["role"], c["password"]) for u, c in creds.items()}})
        auth.write_private_json(os.path.join(self.dir, "credentials.json"), creds)
        auth.write_private_json(os.path.join(self.dir, "admin.json"),
                                {"user": "admin", "password": creds["admin"]["password"]})
        if bed:  # each namespace has its own ports: the same ones on every node's own address
            nodes = [self._node_entry(f"node{i + 1}", 7101, 7201, 7301, 7401 if xapi else None, host=n["ip"])
                     for i, n in enumerate(bed["nodes"])]
        else:
            ports = free_ports(3 * n_nodes, n_nodes)  # per node: raft, api, xapi (TCP); heartbeat (UDP)
            nodes = [self._node_entry(f"node{i + 1}", ports[3 * i], ports[3 * n_nodes + i], ports[3 * i + 1],
                                      ports[3 * i + 2] if xapi else None)
                     for i in range(n_nodes)]
        meta = {"nodes": nodes, "token_timeout": float(token_timeout),
                "token_coefficient": float(token_coefficient), "xapi": bool(xapi), "netns": bed,
                "settings": {"fence_agent": "process", **(settings or {})}}
        self._save(meta)  # before the namespaces exist, so that `down` finds them after any crash
        if bed:
            netns.setup(bed)
        for n in nodes:
            self._write_config(n, nodes, meta)
        return meta

    def _node_entry(self, name, raft_port, hb_port, api_port, xapi_port, host="127.0.0.1"):
        d = os.path.join(self.dir, name)
        return {"name": name, "raft": f"{host}:{raft_port}", "heartbeat": f"{host}:{hb_port}",
                "api": f"{host}:{api_port}", "xapi": f"{host}:{xapi_port}" if xapi_port else None,
                "config": os.path.join(d, "node.toml"),
                "pidfile": os.path.join(d, "clusterd.pid"), "log": os.path.join(d, "clusterd.log")}

    def _write_config(self, node, members, meta):
        d = os.path.dirname(node["config"])
        os.makedirs(os.path.join(d, "data"), mode=0o700, exist_ok=True)  # the daemon refuses one open to others
        cfg = {
            "name": node["name"], "raft": node["raft"], "heartbeat": node["heartbeat"], "api": node["api"],
            "xapi": node.get("xapi") or "off",
            "data_dir": os.path.join(d, "data"), "token_file": os.path.join(self.dir, "cluster.token"),
            "users_file": os.path.join(self.dir, "users.json"),
            "token_timeout": meta["token_timeout"], "token_coefficient": meta["token_coefficient"],
            **meta.get("settings", {"fence_agent": "process"}),
            "members": [{k: m[k] for k in ("name", "raft", "heartbeat", "api")} for m in members],
        }
        with open(node["config"], "wb") as f:
            tomli_w.dump(cfg, f)

    def add_node_entry(self, name, members):
        """Record a new node (ports allocated here) and write its config with `members`."""
        meta = self.meta()
        if any(n["name"] == name for n in meta["nodes"]):
            raise LauncherError(f"node {name} already exists in {self.dir}")
        if meta.get("netns"):
            raise LauncherError("adding a node to a network-namespace testbed is not supported yet")
        raft_port, api_port, xapi_port, hb_port = free_ports(3, 1)
        entry = self._node_entry(name, raft_port, hb_port, api_port, xapi_port if meta.get("xapi", True) else None)
        meta["nodes"].append(entry)
        self._save(meta)
        self._write_config(entry, list(members) + [entry], meta)
        return entry

    def forget_node_entry(self, name):
        meta = self.meta()
        meta["nodes"] = [n for n in meta["nodes"] if n["name"] != name]
        self._save(meta)

    # -- processes ---------------------------------------------------------------------------
    def pid(self, name):
        """The daemon's pid if the process the launcher started for it is still running."""
        node = self.node(name)
        try:
            with open(node["pidfile"]) as f:
                pid = int(f.read().strip())
            p = psutil.Process(pid)
            if p.status() != psutil.STATUS_ZOMBIE and node["config"] in p.cmdline():
                return pid
        except (OSError, ValueError, psutil.Error):
            pass
        return None

    def command(self, name):
        command = [sys.executable, "-m", "clusterd", "--config", self.node(name)["config"]]
        bed = self.meta().get("netns")
        if bed:  # `ip netns exec` execs the daemon: the pid stays the daemon's
            index = [n["name"] for n in self.meta()["nodes"]].index(name)
            command = ["ip", "netns", "exec", bed["nodes"][index]["ns"]] + command
        return command

    def testbed(self):
        """The network-namespace testbed of this cluster, or None on plain loopback."""
        return self.meta().get("netns")

    def start(self, name):
        if self.pid(name):
            raise LauncherError(f"{name} is already running (pid {self.pid(name)})")
        node = self.node(name)
        with open(node["log"], "ab") as log:
            proc = subprocess.Popen(self.command(name), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        with open(node["pidfile"], "w") as f:
            f.write(str(proc.pid))
        return proc.pid

    def log_tail(self, name, lines=15):
        try:
            with open(self.node(name)["log"], errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self, name, sig=signal.SIGKILL):
        pid = self.pid(name)
        if pid is None:
            raise LauncherError(f"{name} is not running")
        os.kill(pid, sig)
        return pid

    def stop_all(self, grace=5.0):
        procs = []
        for n in self.meta()["nodes"]:
            pid = self.pid(n["name"])
            if pid:
                p = psutil.Process(pid)
                if p.status() == psutil.STATUS_STOPPED:
                    p.send_signal(signal.SIGCONT)
                p.terminate()
                procs.append(p)
        _, alive = psutil.wait_procs(procs, timeout=grace)
        for p in alive:
            p.kill()
        psutil.wait_procs(alive, timeout=grace)
        return len(procs)

    def destroy(self):
        self.stop_all()
        bed = self.meta().get("netns") if self.exists() else None
        if bed:
            netns.teardown(bed)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- status ------------------------------------------------------------------------------
    async def _node_status(self, node, timeout, clients):
        """What the node itself reports; `clients` keeps logged-in clients across polls."""
        entry = {"name": node["name"], "pid": self.pid(node["name"]), "api": node["api"],
                 "xapi_url": f"http://{node['xapi']}/" if node.get("xapi") else None, "reachable": False,
                 "is_quorate": None, "live_hosts": None, "leader": None, "term": None, "commit_index": None}
        if entry["pid"] is None:
            return entry, None
        c = clients.get(node["name"])
        if c is None:
            creds = self.credentials()
            c = clients[node["name"]] = AsyncClient(node["api"], creds["user"], creds["password"], timeout=timeout)
        try:
            st = await c.Node.status()
            entry.update({k: st.get(k) for k in ("ready", "is_quorate", "live_hosts", "leader", "term",
                                                 "commit_index", "raft_state", "live", "quorum",
                                                 "effective_token", "paused", "drain_status")})
            entry["reachable"] = True
            records = await c.Cluster.get_all_records() if st.get("ready") else {}
            return entry, records
        except Exception as e:
            entry["error"] = str(e) or type(e).__name__
            await clients.pop(node["name"]).close()
            return entry, None

    async def _records(self, name, timeout):
        """The groups (in brief) and the fence records, as node `name` reports them."""
        creds = self.credentials()
        try:
            async with AsyncClient(self.node(name)["api"], creds["user"], creds["password"], timeout=timeout) as c:
                groups = [{k: g[k] for k in ("name", "owner", "state", "persistent_state")}
                          for g in await c.Group.get_all_records()]
                return groups, await c.Node.fence_status()
        except Exception:
            return None, None

    async def status_async(self, timeout=2.0, groups=False, clients=None):
        own = clients is None
        clients = {} if own else clients
        try:
            results = await asyncio.gather(*(self._node_status(n, timeout, clients) for n in self.meta()["nodes"]))
        finally:
            if own:
                for c in clients.values():
                    await c.close()
        nodes = [r[0] for r in results]
        leaders = [n["leader"] for n in nodes if n["reachable"]]
        leader = max(set(leaders), key=leaders.count) if leaders else None
        # the Cluster record as the leader reports it, else as any reachable node does
        order = sorted(results, key=lambda r: (r[0]["name"] != leader, not r[0]["reachable"]))
        cluster = None
        for entry, records in order:
            if records:
                cluster = dict(next(iter(records.values())), ref=next(iter(records)), leader=leader,
                               reported_by=entry["name"])
                break
        st = {"dir": self.dir, "cluster": cluster, "nodes": nodes}
        if groups:
            st["groups"], st["fence"] = await self._records(cluster["reported_by"], timeout) if cluster else (None, None)
        return st

    def status(self, timeout=2.0, groups=False):
        return asyncio.run(self.status_async(timeout, groups))

    def wait_quorate(self, timeout=30.0):
        """Until every running node is ready and quorate, sees every running node live, and the
        cluster record exists: a command issued then is placed over the whole cluster, not over
        the first majority that formed."""
        return asyncio.run(self._wait_quorate(timeout))

    async def _wait_quorate(self, timeout):
        deadline = time.monotonic() + timeout
        expected = [n["name"] for n in self.meta()["nodes"] if self.pid(n["name"])]
        clients = {}  # logged in once, not at every poll (a login costs the daemon a PBKDF2)
        try:
            while True:
                st = await self.status_async(timeout=1.0, clients=clients)
                running = [n for n in st["nodes"] if n["pid"]]
                dead = [n["name"] for n in st["nodes"] if n["name"] in expected and not n["pid"]]
                if dead:
                    raise LauncherError(f"{dead[0]} exited during start-up:\n{self.log_tail(dead[0])}")
                names = {n["name"] for n in running}
                if st["cluster"] and running and all(n["is_quorate"] and n.get("ready") and names <= set(n.get("live") or ())
                                                     for n in running):
                    return st
                if time.monotonic() > deadline:
                    raise LauncherError(f"the cluster was not quorate within {timeout:.0f} s; "
                                        f"logs are in {self.dir}/*/clusterd.log")
                await asyncio.sleep(0.05)
        finally:
            for c in clients.values():
                await c.close()
