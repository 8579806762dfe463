"""clusterctl: run a local cluster and talk to it."""
import json
import signal
import sys
import time
import types

import click
from rich.console import Console
from rich.table import Table

from clusterd import config
from clusterd.client import Client
from clusterd.errors import ClusterError

from . import chaos_cli, domains_cli, groups_cli
from .lab import netns
from .lab.launcher import LauncherError, LocalCluster

console = Console()
SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "STOP": signal.SIGSTOP, "CONT": signal.SIGCONT}

dir_option = click.option("--dir", "directory", envvar="CLUSTERD_DIR", type=click.Path(file_okay=False),
                          help="the cluster dir (default: $CLUSTERD_DIR, else ~/.local/state/clusterd/local)")
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")


def fail(message, code=1):
    click.echo(f"clusterctl: {message}", err=True)
    sys.exit(code)


def print_json(obj):
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def client_for(cluster, node=None):
    """A client of `node`, or of the first running node that is quorate (else any running)."""
    creds = cluster.credentials()
    names = [node] if node else [n["name"] for n in cluster.meta()["nodes"]]
    fallback = None
    for name in names:
        n = cluster.node(name)
        if not cluster.pid(name):
            continue
        c = Client(n["api"], creds["user"], creds["password"], timeout=10)
        try:
            if c.Node.status()["is_quorate"] or node:
                return c
            fallback = fallback or c
        except (OSError, ClusterError):
            continue
    if fallback:
        return fallback
    fail("no node of the cluster answers" if not node else f"{node} does not answer")


# -- the commands -----------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """Run a local clusterd cluster and manage it."""


@cli.command()
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 15))
@dir_option
@click.option("--token-timeout", default=1.0, show_default=True, type=click.FloatRange(0.1, 300))
@click.option("--token-coefficient", default=0.65, show_default=True, type=click.FloatRange(0, 60))
@click.option("--timeout", default=30.0, show_default=True, help="seconds to wait for quorum")
@click.option("--netns", "use_netns", is_flag=True,
              help="root: each node in its own network namespace on a bridge, for partition testing")
@click.option("--xapi/--no-xapi", default=True, show_default=True,
              help="serve the XenAPI (XML-RPC over HTTP) on each node; `status` shows the URLs")
@click.option("--fence-agent", type=click.Choice(["process", "watchdog", "script"]), default="process",
              show_default=True, help="how a lost node is fenced before its groups restart elsewhere")
@click.option("--fence-script", type=click.Path(exists=True, dir_okay=False, resolve_path=True),
              help="with --fence-agent script: the fence command (name=value lines on stdin, exit 0 = fenced)")
@click.option("--fence-option", multiple=True, metavar="NAME=VALUE", help="with script: one more stdin line")
@click.option("--no-quorum-policy", type=click.Choice(["stop", "freeze", "ignore"]), default="stop", show_default=True,
              help="what a node without quorum does with its groups (freeze and ignore need a fence that kills)")
@json_option
def up(nodes, directory, token_timeout, token_coefficient, timeout, use_netns, xapi, fence_agent, fence_script,
       fence_option, no_quorum_policy, as_json):
    """Start a local cluster of N nodes on 127.0.0.1 and wait until it is quorate."""
    cluster = LocalCluster(directory)
    settings = {"fence_agent": fence_agent, "fence_options": dict(o.partition("=")[::2] for o in fence_option),
                "no_quorum_policy": no_quorum_policy}
    if fence_script:
        settings["fence_script"] = fence_script
    try:
        config.check_fencing(types.SimpleNamespace(fence_timeout=60.0, fence_script=None, **settings))
    except config.ConfigError as e:
        fail(str(e))
    try:
        if cluster.exists():
            existing = len(cluster.meta()["nodes"])
            if any(cluster.pid(n["name"]) for n in cluster.meta()["nodes"]):
                fail(f"a cluster is already running in {cluster.dir}; `clusterctl down` stops it")
            if existing != nodes:
                fail(f"{cluster.dir} holds a stopped {existing}-node cluster; `clusterctl down` removes it")
            bed = cluster.testbed()
            if bed and not netns.exists(bed):  # the namespaces went away (a reboot): make them again
                netns.setup(bed)
        else:
            cluster.create(nodes, token_timeout, token_coefficient, xapi, use_netns, settings=settings)
        for n in cluster.meta()["nodes"]:
            cluster.start(n["name"])
        t0 = time.monotonic()
        st = cluster.wait_quorate(timeout)
    except (LauncherError, netns.NetnsError) as e:
        fail(str(e))
    if as_json:
        print_json(st)
    else:
        console.print(f"cluster up in {cluster.dir}: quorate after {time.monotonic() - t0:.1f} s")
        show_status(st)


@cli.command()
@dir_option
@click.option("--keep", is_flag=True, help="stop the daemons but keep configs, data and logs")
def down(directory, keep):
    """Stop the local cluster's daemons and remove its dir."""
    cluster = LocalCluster(directory)
    if not cluster.exists():
        click.echo(f"no cluster in {cluster.dir}")
        return
    stopped = cluster.stop_all()
    if not keep:
        cluster.destroy()
    click.echo(f"stopped {stopped} daemon(s)" + ("" if keep else f"; removed {cluster.dir}"))


@cli.command()
@dir_option
@json_option
def status(directory, as_json):
    """The Cluster record and each node's own view."""
    try:
        st = LocalCluster(directory).status(groups=True)
    except LauncherError as e:
        fail(str(e))
    if as_json:
        print_json(st)
    else:
        show_status(st)


def show_status(st):
    c = st["cluster"]
    if c:
        console.print(f"[bold]Cluster[/] {c['uuid']}  stack {c['cluster_stack']}  leader [bold]{c['leader']}[/]  "
                      f"quorate {c['is_quorate']}  live_hosts {c['live_hosts']}/{c['expected_hosts']}  "
                      f"quorum {c['quorum']}  token {c['token_timeout']} s + {c['token_timeout_coefficient']} s/node")
        if c["other_config"]:
            console.print(f"other_config {c['other_config']}")
    else:
        console.print("[yellow]no Cluster record (no reachable node holds one)[/]")
    fences = st.get("fence") or {}
    t = Table("node", "pid", "up", "quorate", "live", "leader", "raft", "term", "commit", "paused", "drain", "fence")
    for n in st["nodes"]:
        def cell(v):
            return "-" if v is None else str(v)
        t.add_row(n["name"], cell(n["pid"]), "yes" if n["reachable"] else "[red]no[/]",
                  {True: "[green]yes[/]", False: "[red]no[/]"}.get(n["is_quorate"], "-"),
                  cell(n["live_hosts"]), cell(n["leader"]), cell(n.get("raft_state")), cell(n["term"]),
                  cell(n["commit_index"]), {True: "[yellow]yes[/]", False: "no"}.get(n.get("paused"), "-"),
                  cell(n.get("drain_status")), fence_cell(fences.get(n["name"])))
    console.print(t)
    for name, f in sorted(fences.items()):
        if f["status"] != "fenced":
            console.print(f"fence of {name}: {f['status']} by {f['agent']}, attempt {f['attempts']}"
                          + (f": {f['detail']}" if f.get("detail") else ""), soft_wrap=True)
    urls = [f"{n['name']} {n['xapi_url']}" for n in st["nodes"] if n.get("xapi_url")]
    if urls:
        console.print("XenAPI SDK: " + "  ".join(urls), soft_wrap=True)
    if st.get("groups"):
        t = Table("group", "owner", "state", "persistent")
        for g in sorted(st["groups"], key=lambda g: g["name"].casefold())[:MAX_GROUPS_SHOWN]:
            t.add_row(g["name"], g["owner"] or "-", g["state"], g["persistent_state"])
        console.print(t)
        if len(st["groups"]) > MAX_GROUPS_SHOWN:
            console.print(f"... and {len(st['groups']) - MAX_GROUPS_SHOWN} more groups (clusterctl group list)")


MAX_GROUPS_SHOWN = 40
FENCE_COLOURS = {"fenced": "green", "requested": "yellow", "failed": "red"}


def fence_cell(f):
    if not f:
        return "-"
    return f"[{FENCE_COLOURS[f['status']]}]{f['status']}[/] ({f['agent']}, #{f['attempts']})"


@cli.command()
@click.argument("name")
@click.option("--signal", "sig", type=click.Choice(list(SIGNALS)), default="KILL", show_default=True)
@dir_option
def kill(name, sig, directory):
    """Send a signal to a node's daemon (default SIGKILL)."""
    try:
        pid = LocalCluster(directory).kill(name, SIGNALS[sig])
    except LauncherError as e:
        fail(str(e))
    click.echo(f"sent SIG{sig} to {name} (pid {pid})")


@cli.command()
@click.argument("name")
@dir_option
def start(name, directory):
    """Start a node's daemon again (it catches up from its journal and the leader)."""
    try:
        pid = LocalCluster(directory).start(name)
    except LauncherError as e:
        fail(str(e))
    click.echo(f"started {name} (pid {pid})")


@cli.command()
@dir_option
@json_option
def credentials(directory, as_json):
    """The pool-admin credentials of the local cluster."""
    cluster = LocalCluster(directory)
    try:
        with open(f"{cluster.dir}/admin.json") as f:
            creds = json.load(f)
    except OSError:
        fail(f"no credentials in {cluster.dir}")
    if as_json:
        print_json(creds)
    else:
        click.echo(f"user {creds['user']}\npassword {creds['password']}")


# -- cluster ----------------------------------------------------------------------------------
@cli.group("cluster")
def cluster_group():
    """Read and change the Cluster object."""


def _call(directory, node, method, *args):
    cluster = LocalCluster(directory)
    try:
        c = client_for(cluster, node)
        ref = c.Cluster.get_all()
        if not ref:
            fail("there is no Cluster (it was destroyed)")
        return getattr(getattr(c, method.split(".")[0]), method.split(".")[1])(ref[0], *args)
    except LauncherError as e:
        fail(str(e))
    except ClusterError as e:
        fail(str(e), 3)


node_option = click.option("--node", help="the node to ask (default: a quorate one)")


@cluster_group.command("get")
@dir_option
@node_option
@json_option
def cluster_get(directory, node, as_json):
    """The Cluster record."""
    rec = _call(directory, node, "Cluster.get_record")
    if as_json:
        print_json(rec)
    else:
        t = Table("field", "value")
        for k in sorted(rec):
            t.add_row(k, str(rec[k]))
        console.print(t)


@cluster_group.command("set-other-config")
@click.argument("pairs", nargs=-1, required=True)
@dir_option
@node_option
def cluster_set_other_config(pairs, directory, node):
    """Add or change KEY=VALUE pairs in other_config (other keys are kept)."""
    bad = [p for p in pairs if "=" not in p]
    if bad:
        fail(f"expected KEY=VALUE, got {bad[0]!r}", 2)
    current = _call(directory, node, "Cluster.get_other_config")
    current.update(p.split("=", 1) for p in pairs)
    _call(directory, node, "Cluster.set_other_config", current)
    click.echo("other_config " + json.dumps(current, sort_keys=True))


@cluster_group.command("remove-other-config")
@click.argument("key")
@dir_option
@node_option
def cluster_remove_other_config(key, directory, node):
    """Remove KEY from other_config."""
    _call(directory, node, "Cluster.remove_from_other_config", key)
    click.echo(f"removed {key}")


# -- node membership --------------------------------------------------------------------------
@cli.group("node")
def node_group():
    """Add or remove cluster members (Raft dynamic membership, one change at a time)."""


def _leader_client(cluster):
    st = cluster.status()
    leader = st["cluster"] and st["cluster"]["leader"]
    if not leader:
        fail("no leader: the cluster is not quorate")
    return client_for(cluster, leader)


@node_group.command("add")
@click.argument("name")
@dir_option
def node_add(name, directory):
    """Add a new node to the cluster and start it."""
    cluster = LocalCluster(directory)
    try:
        c = _leader_client(cluster)
        entry = cluster.add_node_entry(name, cluster.meta()["nodes"])
        try:
            c.Node.add(name, entry["raft"], entry["heartbeat"], entry["api"])
        except ClusterError:
            cluster.forget_node_entry(name)
            raise
        pid = cluster.start(name)
    except LauncherError as e:
        fail(str(e))
    except ClusterError as e:
        fail(str(e), 3)
    click.echo(f"added {name} (pid {pid})")


@node_group.command("remove")
@click.argument("name")
@dir_option
def node_remove(name, directory):
    """Remove a node from the cluster and stop it."""
    cluster = LocalCluster(directory)
    try:
        _leader_client(cluster).Node.remove(name)
        if cluster.pid(name):
            cluster.kill(name, signal.SIGTERM)
        cluster.forget_node_entry(name)
    except LauncherError as e:
        fail(str(e))
    except ClusterError as e:
        fail(str(e), 3)
    click.echo(f"removed {name}")


# -- faults on the network-namespace testbed ---------------------------------------------------
@cli.group("fault")
def fault():
    """Network faults on a cluster started with `up --netns` (root)."""


def _testbed(directory):
    cluster = LocalCluster(directory)
    try:
        bed = cluster.testbed()
    except LauncherError as e:
        fail(str(e))
    if not bed:
        fail(f"the cluster in {cluster.dir} runs on loopback; faults need `clusterctl up --netns`")
    return bed, [n["name"] for n in cluster.meta()["nodes"]]


def _indexes(names, csv):
    wanted = [x for x in csv.split(",") if x]
    unknown = [x for x in wanted if x not in names]
    if unknown:
        fail(f"no node {unknown[0]!r} (nodes: {', '.join(names)})", 2)
    return [names.index(x) for x in wanted]


def _apply_fault(fn):
    try:
        fn()
    except netns.NetnsError as e:
        fail(str(e))


@fault.command("partition")
@click.argument("sides", nargs=-1, required=True)
@dir_option
def fault_partition(sides, directory):
    """Cut the cluster into SIDES (comma-separated node names each), both ways."""
    bed, names = _testbed(directory)
    groups = [_indexes(names, side) for side in sides]
    _apply_fault(lambda: netns.partition(bed, *groups))
    click.echo("partitioned: " + " | ".join(sides))


@fault.command("drop")
@click.argument("src")
@click.argument("dst")
@dir_option
def fault_drop(src, dst, directory):
    """One way: drop what SRC sends to DST."""
    bed, names = _testbed(directory)
    (i,), (j,) = _indexes(names, src), _indexes(names, dst)
    _apply_fault(lambda: netns.drop(bed, i, j))
    click.echo(f"dropping {src} -> {dst}")


@fault.command("loss")
@click.argument("node")
@click.argument("percent", type=click.IntRange(0, 100))
@dir_option
def fault_loss(node, percent, directory):
    """Drop PERCENT % of the packets arriving at NODE, at random."""
    bed, names = _testbed(directory)
    (i,) = _indexes(names, node)
    _apply_fault(lambda: netns.loss(bed, i, percent))
    click.echo(f"{percent}% loss at {node}")


@fault.command("link")
@click.argument("node")
@click.argument("state", type=click.Choice(["up", "down"]))
@dir_option
def fault_link(node, state, directory):
    """Set NODE's link up or down."""
    bed, names = _testbed(directory)
    (i,) = _indexes(names, node)
    _apply_fault(lambda: netns.link(bed, i, state == "up"))
    click.echo(f"{node} link {state}")


@fault.command("heal")
@dir_option
def fault_heal(directory):
    """Undo every fault."""
    bed, _ = _testbed(directory)
    _apply_fault(lambda: netns.heal(bed))
    click.echo("healed")


@fault.command("capabilities")
@json_option
def fault_capabilities(as_json):
    """What this machine supports for the testbed and its faults."""
    caps = netns.capabilities()
    if as_json:
        return print_json(caps)
    for k, v in caps.items():
        click.echo(f"{k}: {', '.join(v) if isinstance(v, list) else v}")


chaos_cli.register(cli, fail)
groups_cli.register(cli, {"dir_option": dir_option, "json_option": json_option, "node_option": node_option,
                         "client_for": client_for, "fail": fail, "print_json": print_json, "console": console})
domains_cli.register(cli, node_group, {"dir_option": dir_option, "json_option": json_option, "node_option": node_option,
                                       "client_for": client_for, "fail": fail, "print_json": print_json,
                                       "console": console})


def main():
    cli()


if __name__ == "__main__":
    main()
