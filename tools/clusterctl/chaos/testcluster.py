"""The cluster a chaos run (or the demo) works on: its fencing, its groups, its final state,
and its removal."""
import shutil


from clusterd.client import Client

GROUPS = 3


class SetupError(Exception):
    pass


def remove(cluster):
    """Daemons stopped, testbed and dir removed (also when create() failed half way)."""
    if cluster.exists():
        cluster.destroy()
    else:
        shutil.rmtree(cluster.dir, ignore_errors=True)


def make_groups(cluster, witness, count=GROUPS, stop_timeout=3):
    """`count` groups g0.., each one process resource (`sleep`) that writes the shared witness."""
    creds = cluster.credentials()
    out = {}
    with Client(cluster.meta()["nodes"][0]["api"], creds["user"], creds["password"], timeout=30) as c:
        for i in range(count):
            g = f"g{i}"
            c.Group.create(g)
            props = {"args": ["sleep", "3600"], "stop_timeout": stop_timeout}
            c.Resource.create(g, f"{g}-r", "process", dict(props, witness=witness) if witness else props)
            op = c.Operation.wait(c.Group.online(g)["handle"], 60)
            if op["status"] != "succeeded":
                raise SetupError(f"group {g} did not come online: {op}")
            out[g] = c.Group.get_record(g)["resources"][0]["id"]
    return out


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
