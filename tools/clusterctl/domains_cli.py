"""clusterctl node pause|resume and clusterctl domain ... (recovery domains)."""
import time

import click
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from clusterd.errors import ClusterError

from .lab.launcher import LauncherError, LocalCluster

DEFAULT_QUEUE = "clusterctl"


def register(cli, node_group, common):
    dir_option, json_option, node_option = common["dir_option"], common["json_option"], common["node_option"]
    client_for, fail, print_json, console = common["client_for"], common["fail"], common["print_json"], common["console"]

    def client(directory, node):
        try:
            return client_for(LocalCluster(directory), node)
        except LauncherError as e:
            fail(str(e))

    def call(c, method, *args):
        try:
            cls, name = method.split(".")
            return getattr(getattr(c, cls), name)(*args)
        except ClusterError as e:
            fail(str(e) + (f" [0x{e.number:X}]" if e.number is not None else ""), 3)

    # -- node pause / resume ------------------------------------------------------------------
    @node_group.command("pause")
    @click.argument("name")
    @click.option("--drain", is_flag=True, help="move every group the node owns to other nodes")
    @click.option("--remain-on-error", is_flag=True,
                  help="0x1: a group that policy cannot place elsewhere stays on the paused node")
    @click.option("--wait", is_flag=True, help="with --drain: show progress until the drain ends")
    @click.option("--timeout", default=600.0, show_default=True)
    @dir_option
    @node_option
    def node_pause(name, drain, remain_on_error, wait, timeout, directory, node):
        """Pause a node (ApiPauseNodeEx): it keeps what it runs unless --drain, and hosts nothing new."""
        c = client(directory, node)
        r = call(c, "Node.pause", name, drain, 1 if remain_on_error else 0)
        click.echo(f"{r['status']} (0x{r['code']:X}): {name} paused" + (", draining" if drain else ""))
        if not (drain and wait):
            return
        rec = call(c, "Node.get_pause_record", name)
        deadline = time.monotonic() + timeout
        with Progress(TextColumn("draining {task.fields[node]}"), BarColumn(),
                      TextColumn("{task.completed:.0f}/{task.total:.0f} groups moved"), console=console) as bar:
            task = bar.add_task("drain", total=max(rec["total"], 1), node=name)
            while True:
                rec = call(c, "Node.get_pause_record", name)
                bar.update(task, completed=rec["total"] - rec["remaining"] if rec["drain_status"] == "InProgress"
                           else rec["total"] - rec["groups"] + rec["kept"])
                if rec["drain_status"] != "InProgress" or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        click.echo(f"drain {rec['drain_status']}" + (f": {rec['detail']}" if rec["detail"] else "")
                   + (f" ({rec['kept']} group(s) kept on {name})" if rec["kept"] else ""))
        if rec["drain_status"] != "Completed":
            raise SystemExit(4)

    @node_group.command("resume")
    @click.argument("name")
    @click.option("--failback", type=click.Choice(["none", "immediate", "policy"]), default="none", show_default=True,
                  help="bring back the groups the drain moved: no, all at once, or as each group's failback policy says")
    @dir_option
    @node_option
    def node_resume(name, failback, directory, node):
        r = call(client(directory, node), "Node.resume", name, failback)
        click.echo(f"{name} resumed; {r['failback']} group(s) to fail back")

    @node_group.command("list")
    @dir_option
    @node_option
    @json_option
    def node_list(directory, node, as_json):
        """Each node's state (Up, Down, Paused) and drain status."""
        records = call(client(directory, node), "Node.get_all_pause_records")
        if as_json:
            return print_json(records)
        t = Table("node", "state", "drain", "groups", "kept", "detail")
        for r in records:
            t.add_row(r["node"], r["state"], r["drain_status"], str(r["groups"]), str(r["kept"]), r["detail"])
        console.print(t)

    # -- domain -------------------------------------------------------------------------------
    @cli.group("domain")
    def domain():
        """Recovery domains (IBM i cluster resource groups) of groups."""

    def finish(c, r, queue, wait, timeout):
        click.echo(f"{r['status']} (0x{r['code']:X}) request handle {r['handle']} (queue {queue})")
        if not wait:
            return
        entry = call(c, "Events.wait", queue, r["handle"], float(timeout))
        if entry is None:
            fail(f"no result on queue {queue} within {timeout:.0f} s", 4)
        if entry["ok"]:
            click.echo(f"request {r['handle']} succeeded")
        else:
            fail(f"request {r['handle']} failed: {entry['message_id']}: {entry['data']} (status {entry.get('status')})", 4)

    request_options = [click.option("--queue", default=DEFAULT_QUEUE, show_default=True, help="results queue"),
                       click.option("--wait", is_flag=True, help="wait for the result on the queue"),
                       click.option("--timeout", default=120.0, show_default=True), dir_option, node_option]

    def with_request_options(fn):
        for opt in reversed(request_options):
            fn = opt(fn)
        return fn

    @domain.command("show")
    @click.argument("group")
    @dir_option
    @node_option
    @json_option
    def domain_show(group, directory, node, as_json):
        d = call(client(directory, node), "Domain.get", group)
        if as_json:
            return print_json(d)
        console.print(f"[bold]{d['group']}[/]  model {d['model']}  status {d['status']} ({d['status_name']})  "
                      f"exit program {d['exit_program'] or '-'}" + (f"  request {d['request']}" if d["request"] else ""))
        t = Table("node", "role", "role number", "active")
        for e in d["nodes"]:
            t.add_row(e["node"], e["role"], str(e["role_number"]), "yes" if e["active"] else "no")
        console.print(t)

    @domain.command("create")
    @click.argument("group")
    @click.option("--model", type=click.Choice(["primary-backup", "peer"]), default="primary-backup", show_default=True)
    @click.option("--primary")
    @click.option("--backups", default="", help="comma-separated, in order")
    @click.option("--peers", default="", help="comma-separated")
    @click.option("--replicates", default="", help="comma-separated")
    @click.option("--exit-program", help="absolute path of an executable")
    @dir_option
    @node_option
    def domain_create(group, model, primary, backups, peers, replicates, exit_program, directory, node):
        nodes, roles = [], []
        for role, names in (("primary", primary or ""), ("backup", backups), ("peer", peers), ("replicate", replicates)):
            for n in [x for x in names.split(",") if x]:
                nodes.append(n)
                roles.append(role)
        call(client(directory, node), "Domain.create", group, model, nodes, roles, exit_program)
        click.echo(f"recovery domain of {group}: {', '.join(f'{n} {r}' for n, r in zip(nodes, roles))}")

    @domain.command("add-node")
    @click.argument("group")
    @click.argument("name")
    @click.option("--role", type=click.Choice(["backup", "replicate", "peer"]), default="backup", show_default=True)
    @click.option("--position", type=int, default=0, help="among the nodes of that role, 1 = first (default: last)")
    @with_request_options
    def domain_add_node(group, name, role, position, queue, wait, timeout, directory, node):
        c = client(directory, node)
        finish(c, call(c, "Domain.add_node", group, name, role, position, queue), queue, wait, timeout)

    @domain.command("remove-node")
    @click.argument("group")
    @click.argument("name")
    @with_request_options
    def domain_remove_node(group, name, queue, wait, timeout, directory, node):
        c = client(directory, node)
        finish(c, call(c, "Domain.remove_node", group, name, queue), queue, wait, timeout)

    @domain.command("set-role")
    @click.argument("group")
    @click.argument("name")
    @click.argument("role", type=click.Choice(["backup", "replicate", "peer"]))
    @click.option("--position", type=int, default=0)
    @with_request_options
    def domain_set_role(group, name, role, position, queue, wait, timeout, directory, node):
        c = client(directory, node)
        finish(c, call(c, "Domain.set_role", group, name, role, position, queue), queue, wait, timeout)

    @domain.command("switchover")
    @click.argument("group")
    @with_request_options
    def domain_switchover(group, queue, wait, timeout, directory, node):
        c = client(directory, node)
        finish(c, call(c, "Domain.switchover", group, queue), queue, wait, timeout)

    @domain.command("start")
    @click.argument("group")
    @with_request_options
    def domain_start(group, queue, wait, timeout, directory, node):
        """Exit program Start on the active nodes, then the group online on the first Up node of the order."""
        c = client(directory, node)
        finish(c, call(c, "Domain.start", group, queue), queue, wait, timeout)

    @domain.command("end")
    @click.argument("group")
    @with_request_options
    def domain_end(group, queue, wait, timeout, directory, node):
        """Exit program End on the active nodes, then the group offline."""
        c = client(directory, node)
        finish(c, call(c, "Domain.end", group, queue), queue, wait, timeout)
