"""clusterctl group ... and clusterctl resource ..."""
import json

import click
from rich.table import Table

from clusterd import moves
from clusterd.errors import ClusterError

from .lab.launcher import LauncherError, LocalCluster


def register(cli, common):
    """Add the group and resource commands to `cli`; `common` holds the shared helpers."""
    dir_option, json_option, node_option = common["dir_option"], common["json_option"], common["node_option"]
    client_for, fail, print_json, console = common["client_for"], common["fail"], common["print_json"], common["console"]

    def call(directory, node, method, *args):
        try:
            c = client_for(LocalCluster(directory), node)
            cls, name = method.split(".")
            return getattr(getattr(c, cls), name)(*args), c
        except LauncherError as e:
            fail(str(e))
        except ClusterError as e:
            fail(str(e), 3)

    def pending(directory, node, method, wait, timeout, *args):
        result, c = call(directory, node, method, *args)
        if not wait:
            click.echo(f"{result['status']} (0x{result['code']:X}) operation {result['handle']}")
            return
        try:
            op = c.Operation.wait(result["handle"], float(timeout))
        except ClusterError as e:
            fail(str(e), 3)
        if op["status"] != "succeeded":
            fail(f"operation {op['handle']} {op['status']}" + (f": {op['error']}" if op["error"] else ""), 4)
        click.echo(f"operation {op['handle']} succeeded")

    wait_options = [click.option("--wait", is_flag=True, help="wait until the operation ends"),
                    click.option("--timeout", default=120.0, show_default=True, help="seconds --wait waits")]

    def with_wait(fn):
        for opt in reversed(wait_options):
            fn = opt(fn)
        return fn

    def parse_props(pairs):
        props = {}
        for p in pairs:
            if "=" not in p:
                fail(f"expected KEY=VALUE, got {p!r}", 2)
            k, v = p.split("=", 1)
            try:
                props[k] = json.loads(v)
            except ValueError:
                props[k] = v
        return props

    # -- groups ----------------------------------------------------------------------------
    @cli.group("group")
    def group():
        """Groups: the unit of ownership (MS-CMRP)."""

    @group.command("list")
    @dir_option
    @node_option
    @json_option
    def group_list(directory, node, as_json):
        records, _ = call(directory, node, "Group.get_all_records")
        if as_json:
            return print_json(records)
        t = Table("group", "state", "owner", "persistent", "seq", "resources")
        for g in sorted(records, key=lambda g: g["name"].casefold()):
            t.add_row(g["name"], g["state"], g["owner"] or "-", g["persistent_state"], str(g["state_sequence"]),
                      str(len(g["resources"])))
        console.print(t)

    @group.command("show")
    @click.argument("name")
    @dir_option
    @node_option
    @json_option
    def group_show(name, directory, node, as_json):
        g, _ = call(directory, node, "Group.get_record", name)
        if as_json:
            return print_json(g)
        console.print(f"[bold]{g['name']}[/] ({g['id']})  {g['state']} on {g['owner'] or '-'}  "
                      f"persistent {g['persistent_state']}  seq {g['state_sequence']}  "
                      f"preferred {','.join(g['preferred_owners']) or '-'}  locked {g['locked']}")
        m = g.get("move")
        if m:
            console.print(f"moving {m['from'] or '-'} -> {m['to']}: {m['phase']}  flags 0x{m['flags']:X}  "
                          f"operation {m['handle']}")
        t = Table("resource", "type", "state", "pid", "depends on", "detail")
        for r in g["resources"]:
            t.add_row(r["name"], r["type"], r["state"], str(r["pid"] or "-"), ",".join(r["dependencies"]) or "-",
                      r["detail"][:40])
        console.print(t)

    @group.command("create")
    @click.argument("name")
    @dir_option
    @node_option
    def group_create(name, directory, node):
        gid, _ = call(directory, node, "Group.create", name)
        click.echo(f"created group {name} ({gid})")

    @group.command("delete")
    @click.argument("name")
    @click.option("--force", is_flag=True, help="take it offline and delete its resources too")
    @dir_option
    @node_option
    def group_delete(name, force, directory, node):
        call(directory, node, "Group.delete", name, force)
        click.echo(f"deleted group {name}")

    @group.command("rename")
    @click.argument("name")
    @click.argument("new_name")
    @dir_option
    @node_option
    def group_rename(name, new_name, directory, node):
        call(directory, node, "Group.rename", name, new_name)
        click.echo(f"renamed {name} to {new_name}")

    @group.command("online")
    @click.argument("name")
    @with_wait
    @dir_option
    @node_option
    def group_online(name, wait, timeout, directory, node):
        pending(directory, node, "Group.online", wait, timeout, name)

    @group.command("offline")
    @click.argument("name")
    @with_wait
    @dir_option
    @node_option
    def group_offline(name, wait, timeout, directory, node):
        pending(directory, node, "Group.offline", wait, timeout, name)

    @group.command("move")
    @click.argument("name")
    @click.option("--to", "to", default=None, help="destination node (default: the best node by placement)")
    @click.option("--flags", "flags", multiple=True,
                  help="move flags, by name (CLUSAPI_GROUP_MOVE_..., the prefix optional) or number (0x6); repeatable")
    @click.option("--property", "props", multiple=True,
                  help='KEY=VALUE for the move property list (VALUE as JSON when it parses, e.g. '
                       '\'Virtual Machine={"format": "CLUSPROP_FORMAT_DWORD", "value": 4}\'); repeatable')
    @with_wait
    @dir_option
    @node_option
    def group_move(name, to, flags, props, wait, timeout, directory, node):
        """Move a group (MoveClusterGroupEx): ERROR_IO_PENDING and an operation handle."""
        pending(directory, node, "Group.move", wait, timeout, name, to, parse_move_flags(flags), parse_props(props))

    @group.command("cancel-move")
    @click.argument("name")
    @dir_option
    @node_option
    def group_cancel_move(name, directory, node):
        call(directory, node, "Group.cancel_move", name)
        click.echo(f"cancelled the move of {name}")

    def parse_move_flags(values):
        total = 0
        for value in (v for item in values for v in item.replace("|", ",").split(",") if v.strip()):
            v = value.strip()
            key = v.upper() if v.upper().startswith("CLUSAPI_GROUP_MOVE_") else "CLUSAPI_GROUP_MOVE_" + v.upper()
            if key in moves.FLAGS:
                total |= moves.FLAGS[key]
                continue
            try:
                total |= int(v, 0)
            except ValueError:
                fail(f"unknown move flag {v!r} (known: {', '.join(moves.FLAGS)})", 2)
        return total

    @group.command("set")
    @click.argument("name")
    @click.option("--preferred-owners", help="comma-separated node names, in order ('' = none)")
    @click.option("--flags", type=int)
    @click.option("--anti-affinity", help="comma-separated class names ('' = none)")
    @click.option("--failover-threshold", type=int)
    @click.option("--failover-period", type=float, help="hours")
    @click.option("--failback", type=click.Choice(["prevent", "immediate", "window"]))
    @dir_option
    @node_option
    def group_set(name, preferred_owners, flags, anti_affinity, failover_threshold, failover_period, failback,
                  directory, node):
        def names(v):
            return [x for x in v.split(",") if x]
        if preferred_owners is not None:
            call(directory, node, "Group.set_preferred_owners", name, names(preferred_owners))
        if flags is not None:
            call(directory, node, "Group.set_flags", name, flags)
        if anti_affinity is not None:
            call(directory, node, "Group.set_anti_affinity", name, names(anti_affinity))
        policy = {k: v for k, v in (("threshold", failover_threshold), ("period_hours", failover_period),
                                    ("failback", failback)) if v is not None}
        if policy:
            call(directory, node, "Group.set_failover_policy", name, policy)
        click.echo(f"updated group {name}")

    # -- resources -------------------------------------------------------------------------
    @cli.group("resource")
    def resource():
        """Resources: what a group runs (agents: process, ocf, dummy)."""

    @resource.command("list")
    @dir_option
    @node_option
    @json_option
    def resource_list(directory, node, as_json):
        records, _ = call(directory, node, "Resource.get_all_records")
        if as_json:
            return print_json(records)
        t = Table("resource", "group", "type", "state", "pid")
        for r in sorted(records, key=lambda r: (r["group"], r["name"])):
            t.add_row(r["name"], r["group"], r["type"], r["state"], str(r["pid"] or "-"))
        console.print(t)

    @resource.command("show")
    @click.argument("name")
    @dir_option
    @node_option
    @json_option
    def resource_show(name, directory, node, as_json):
        r, _ = call(directory, node, "Resource.get_record", name)
        if as_json:
            return print_json(r)
        t = Table("field", "value")
        for k in sorted(r):
            t.add_row(k, json.dumps(r[k]) if not isinstance(r[k], str) else r[k])
        console.print(t)

    @resource.command("create")
    @click.argument("group_name")
    @click.argument("name")
    @click.option("--type", "type_name", required=True, help="process, ocf or dummy")
    @click.option("--prop", "props", multiple=True, help="KEY=VALUE (VALUE may be JSON), repeatable")
    @dir_option
    @node_option
    def resource_create(group_name, name, type_name, props, directory, node):
        rid, _ = call(directory, node, "Resource.create", group_name, name, type_name, parse_props(props))
        click.echo(f"created resource {name} ({rid}) in {group_name}")

    @resource.command("delete")
    @click.argument("name")
    @dir_option
    @node_option
    def resource_delete(name, directory, node):
        call(directory, node, "Resource.delete", name)
        click.echo(f"deleted resource {name}")

    @resource.command("set")
    @click.argument("name")
    @click.option("--prop", "props", multiple=True, help="KEY=VALUE: replaces the properties")
    @click.option("--restart-threshold", type=int)
    @click.option("--restart-period", type=float, help="seconds")
    @click.option("--restart-delay", type=float, help="seconds")
    @click.option("--restart-action", type=click.Choice(["none", "restart", "restart_failover"]))
    @click.option("--monitor-interval", type=float, help="seconds")
    @dir_option
    @node_option
    def resource_set(name, props, restart_threshold, restart_period, restart_delay, restart_action,
                     monitor_interval, directory, node):
        if props:
            call(directory, node, "Resource.set_properties", name, parse_props(props))
        policy = {k: v for k, v in (("threshold", restart_threshold), ("period", restart_period),
                                    ("delay", restart_delay), ("action", restart_action),
                                    ("monitor_interval", monitor_interval)) if v is not None}
        if policy:
            call(directory, node, "Resource.set_restart_policy", name, policy)
        click.echo(f"updated resource {name}")

    @resource.command("depend")
    @click.argument("name")
    @click.argument("depends_on")
    @click.option("--remove", is_flag=True, help="remove the dependency instead")
    @dir_option
    @node_option
    def resource_depend(name, depends_on, remove, directory, node):
        call(directory, node, "Resource.remove_dependency" if remove else "Resource.add_dependency", name, depends_on)
        click.echo(f"{name} {'no longer depends' if remove else 'depends'} on {depends_on}")

    @resource.command("move")
    @click.argument("name")
    @click.argument("group_name")
    @dir_option
    @node_option
    def resource_move(name, group_name, directory, node):
        call(directory, node, "Resource.move_to_group", name, group_name)
        click.echo(f"moved {name} to {group_name}")

    @resource.command("online")
    @click.argument("name")
    @with_wait
    @dir_option
    @node_option
    def resource_online(name, wait, timeout, directory, node):
        pending(directory, node, "Resource.online", wait, timeout, name)

    @resource.command("offline")
    @click.argument("name")
    @with_wait
    @dir_option
    @node_option
    def resource_offline(name, wait, timeout, directory, node):
        pending(directory, node, "Resource.offline", wait, timeout, name)
