"""The cluster a chaos run (or the demo) works on: its fencing, its groups, its final state,
and its removal."""
import os
import shutil
import sys

from clusterd.client import Client

from ..launcher import free_ports

TESTRES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testres.py")
GROUPS = 3


class SetupError(Exception):
    pass


def remove(cluster):
    """Daemons stopped, testbed and dir removed (also when create() failed half way)."""
    if cluster.exists():
        cluster.destroy()
    else:
        shutil.rmtree(cluster.dir, ignore_errors=True)


def _create_groups(cluster, count, resources_of, restart=None):
    """Groups g0.., each with the resources resources_of(group) -> [(name, properties)], online."""
    creds = cluster.credentials()
    out = {}
    with Client(cluster.meta()["nodes"][0]["api"], creds["user"], creds["password"], timeout=30) as c:
        for i in range(count):
            g = f"g{i}"
            c.Group.create(g)
            for name, props in resources_of(g):
                c.Resource.create(g, name, "process", props)
            if restart:
                for r in c.Group.get_record(g)["resources"]:
                    c.Resource.set_restart_policy(r["id"], dict(restart))
            op = c.Operation.wait(c.Group.online(g)["handle"], 60)
            if op["status"] != "succeeded":
                raise SetupError(f"group {g} did not come online: {op}")
            out[g] = c.Group.get_record(g)["resources"][0]["id"]
    return out


def make_groups(cluster, witness, count=GROUPS, stop_timeout=3):
    """`count` groups g0.., each one process resource (`sleep`) whose agent writes the witness."""
    props = {"args": ["sleep", "3600"], "stop_timeout": stop_timeout}
    return _create_groups(cluster, count, lambda g: [(f"{g}-r", dict(props, witness=witness) if witness else props)])


# a chaos run's resources fail over after one restart, and are watched every second
CHAOS_RESTART = {"threshold": 1, "period": 300.0, "delay": 0.5, "action": "restart_failover", "monitor_interval": 1.0}
SIBLINGS = ("a", "b")  # two resources a group: a fault in one, the hand-over of both
STOP_TIMEOUT = 3.0
START_TIMEOUT = 10.0  # longer than the slowest slow start (8 s), shorter than the default 20 s


def control_path(control_dir, group):
    return os.path.join(control_dir, f"{group}.json")


def make_witnessed_groups(cluster, witness, control_dir, count=GROUPS, stop_timeout=STOP_TIMEOUT):
    """`count` groups g0.., each two testres.py resources g<i>-a and g<i>-b that write the witness
    themselves, listen on a port of their own for check_tcp, and read their faults from
    control_dir/g<i>.json. Returns {group: its first resource's id}."""
    os.makedirs(control_dir, exist_ok=True)
    ports = iter(free_ports(count * len(SIBLINGS), 0))

    def resources_of(g):
        out = []
        for s in SIBLINGS:
            port = next(ports)
            out.append((f"{g}-{s}", {"args": [sys.executable, TESTRES, "--witness", witness, "--group", g,
                                              "--control", control_path(control_dir, g), "--port", str(port)],
                                     "check_tcp": f"127.0.0.1:{port}", "stop_timeout": stop_timeout,
                                     "start_timeout": START_TIMEOUT}))
        return out
    return _create_groups(cluster, count, resources_of, CHAOS_RESTART)


def final_state(cluster):
    """other_config and each group's persistent state, from the first node that is quorate."""
    creds = cluster.credentials()
    for n in cluster.meta()["nodes"]:
        try:
            with Client(n["api"], creds["user"], creds["password"], timeout=10) as c:
                if not c.Node.status()["is_quorate"]:
                    continue
                ref = c.Cluster.get_all()[0]
                return {"node": n["name"], "other_config": c.Cluster.get_other_config(ref),
                        "groups": {g["name"]: g["persistent_state"] for g in c.Group.get_all_records()
                                   if g["name"].startswith("g")},
                        "owners": {g["name"]: g["owner"] for g in c.Group.get_all_records()}}
        except Exception:  # that node did not answer: try the next
            continue
    return {"node": None, "other_config": {}, "groups": {}, "error": "no quorate node answered"}
