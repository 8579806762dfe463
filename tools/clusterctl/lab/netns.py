"""The network-namespace testbed: each node in its own namespace, on a bridge of its own.

Root only. For a cluster dir, the tool makes a bridge `cdb-<tag>` in the host namespace with the
address 10.213.<k>.254/24 (so clients reach the nodes from the host side), and per node a
namespace `cd-<tag>-<i>` holding one end of a veth pair with 10.213.<k>.<i>/24; the other end is
a port of the bridge. Nothing is routed: no default route, no forwarding, no NAT. The names are
recorded in the cluster dir before anything is made, so `teardown` also removes what a crashed
run left behind.

Faults are nftables rules in a table `clusterd` inside each namespace (drops by address, random
loss), and links set down or up on the host side. `tc netem` (latency) is used only where the
kernel has it; `capabilities()` says what this machine supports.
"""
import hashlib
import os
import shutil
import subprocess

PREFIX = "10.213"
TABLE = "clusterd"


class NetnsError(Exception):
    pass


def run(*cmd, ns=None, check=True, input=None):
    full = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    r = subprocess.run(full, capture_output=True, text=True, input=input, timeout=30)
    if check and r.returncode != 0:
        raise NetnsError(f"{' '.join(full)}: {r.stderr.strip() or r.stdout.strip()}")
    return r


def capabilities():
    """What this machine can do for the testbed, and why not where it cannot."""
    caps = {"root": os.geteuid() == 0, "ip": shutil.which("ip") is not None,
            "nft": shutil.which("nft") is not None, "netem": False}
    if caps["root"] and caps["ip"]:
        probe = "cdprobe-netem"
        try:
            run("ip", "netns", "add", probe)
            caps["netem"] = run("tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
                                ns=probe, check=False).returncode == 0
        except (NetnsError, FileNotFoundError, subprocess.TimeoutExpired):
            caps["netns"] = False
        finally:
            run("ip", "netns", "del", probe, check=False)
        caps.setdefault("netns", True)
    else:
        caps["netns"] = False
    caps["faults"] = (["link down/up"] if caps["netns"] else []) + \
        (["two-way drop", "one-way drop", "random loss"] if caps["nft"] and caps["netns"] else []) + \
        (["latency"] if caps["netem"] else [])
    return caps


def require():
    caps = capabilities()
    if not caps["root"]:
        raise NetnsError("the network-namespace testbed needs root (it creates namespaces, a bridge "
                         "and nftables rules); run as root or use the plain loopback cluster")
    if not caps["netns"]:
        raise NetnsError("this machine cannot create network namespaces (`ip netns add` failed)")
    if not caps["nft"]:
        raise NetnsError("nftables is missing (`nft` not found): apt-get install -y nftables")
    return caps


def plan(directory, n):
    """The names and addresses of a testbed for the cluster dir (deterministic)."""
    digest = hashlib.sha1(os.path.abspath(directory).encode()).hexdigest()
    tag, k = digest[:6], 1 + int(digest[6:10], 16) % 250
    return {
        "bridge": f"cdb-{tag}", "host_ip": f"{PREFIX}.{k}.254",
        "nodes": [{"ns": f"cd-{tag}-{i}", "veth": f"cdv-{tag}-{i}", "ip": f"{PREFIX}.{k}.{i}"}
                  for i in range(1, n + 1)],
    }


def setup(bed):
    require()
    teardown(bed)  # whatever a crashed run left under these names
    run("ip", "link", "add", bed["bridge"], "type", "bridge")
    run("ip", "addr", "add", f"{bed['host_ip']}/24", "dev", bed["bridge"])
    run("ip", "link", "set", bed["bridge"], "up")
    for node in bed["nodes"]:
        ns, veth = node["ns"], node["veth"]
        run("ip", "netns", "add", ns)
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        run("ip", "link", "set", veth, "master", bed["bridge"])
        run("ip", "link", "set", veth, "up")
        run("ip", "link", "set", "lo", "up", ns=ns)
        run("ip", "addr", "add", f"{node['ip']}/24", "dev", "eth0", ns=ns)
        run("ip", "link", "set", "eth0", "up", ns=ns)
        run("nft", "add", "table", "inet", TABLE, ns=ns)
        for hook in ("input", "output"):
            run("nft", "add", "chain", "inet", TABLE, hook,
                f"{{ type filter hook {hook} priority 0 ; policy accept ; }}", ns=ns)


def teardown(bed):
    """Remove the namespaces (their veths go with them) and the bridge; absent ones are fine."""
    present = run("ip", "netns", "list", check=False).stdout
    for node in bed["nodes"]:
        if node["ns"] in present.split():
            run("ip", "netns", "del", node["ns"], check=False)
        run("ip", "link", "del", node["veth"], check=False)
    run("ip", "link", "del", bed["bridge"], check=False)


def exists(bed):
    return run("ip", "link", "show", bed["bridge"], check=False).returncode == 0


# -- faults -----------------------------------------------------------------------------------
def _node(bed, name_or_index):
    return bed["nodes"][name_or_index]


def drop(bed, src, dst):
    """One-way: packets from node index src to node index dst are dropped (on arrival at dst)."""
    run("nft", "add", "rule", "inet", TABLE, "input", "ip", "saddr", _node(bed, src)["ip"], "drop",
        ns=_node(bed, dst)["ns"])


def drop_port(bed, src, dst, proto, src_port, dst_port):
    """One-way, one service: packets of `proto` (tcp|udp) from node index src to node index dst
    that go to dst's port (src calling dst's service) or come from src's port (src's service
    answering dst) are dropped on arrival at dst. Everything else between them still flows."""
    if proto not in ("tcp", "udp"):
        raise NetnsError(f"drop_port: proto must be tcp or udp, not {proto!r}")
    for direction, port in (("dport", dst_port), ("sport", src_port)):
        run("nft", "add", "rule", "inet", TABLE, "input", "ip", "saddr", _node(bed, src)["ip"], proto, direction,
            str(int(port)), "drop", ns=_node(bed, dst)["ns"])


def partition(bed, *sides):
    """Two-way drops between every pair of nodes on different sides (lists of node indexes)."""
    for a, side in enumerate(sides):
        for other in sides[a + 1:]:
            for i in side:
                for j in other:
                    drop(bed, i, j)
                    drop(bed, j, i)


def loss(bed, index, percent):
    """Random loss of incoming packets at a node."""
    run("nft", "add", "rule", "inet", TABLE, "input", "numgen", "random", "mod", "100", "<",
        str(int(percent)), "drop", ns=_node(bed, index)["ns"])  # (`meta random` does not parse)


def link(bed, index, up):
    run("ip", "link", "set", _node(bed, index)["veth"], "up" if up else "down")


def heal(bed):
    """Every fault undone: rules flushed, links up."""
    for i, node in enumerate(bed["nodes"]):
        for hook in ("input", "output"):
            run("nft", "flush", "chain", "inet", TABLE, hook, ns=node["ns"], check=False)
        link(bed, i, True)
