"""Placement: pure functions of (state, live view, request) -> the node a group should run on."""
from .domains import order as domain_order
from .pause import paused_nodes


def node_load(state, skip_group=None):
    """Per node: how many online groups it owns, and the anti-affinity classes among them."""
    load, classes = {n: 0 for n in state["members"]}, {n: set() for n in state["members"]}
    for g in state["groups"].values():
        if g["id"] == skip_group or g["owner"] not in load or g["persistent_state"] != "online":
            continue
        load[g["owner"]] += 1
        classes[g["owner"]].update(g["anti_affinity"])
    return load, classes


def place_group(state, live, group, exclude=(), load=None, policy=True):
    """A group with a recovery domain: the first node of the domain's order (primary, backups
    in order; or the peers) that is live, not paused and not excluded; None if none, since
    the domain limits where the group may run. Without one (or with policy=False, a drain's
    "move it anyway"): preferred owners in order, skipping nodes that are not live; else,
    among the live members, nodes that host no group sharing an anti-affinity class name
    (when any node qualifies), then the least loaded; ties by node name. Paused nodes are
    never chosen. None when no node can host it. `load` is node_load(state) when the caller
    already has it (placing many groups)."""
    paused = paused_nodes(state)
    candidates = [n for n in sorted(state["members"]) if n in live and n not in exclude and n not in paused]
    if policy and group.get("domain"):
        return next((n for n in domain_order(group["domain"]) if n in candidates), None)
    for n in group["preferred_owners"]:
        if n in candidates:
            return n
    if not candidates:
        return None
    counts, classes = load if load is not None else node_load(state, skip_group=group["id"])
    wanted = set(group["anti_affinity"])
    apart = [n for n in candidates if not wanted & classes[n]] or candidates
    return min(apart, key=lambda n: (counts[n], n))


def in_window(hour, start, end):
    """The failback window [start, end) in hours of the day; it may wrap past midnight; an
    empty window (start == end) never opens."""
    return start <= hour < end if start <= end else hour >= start or hour < end


def failback_moves(state, live, hour):
    """[(group id, owner, destination)] of failback_move over every group."""
    return [(g["id"], g["owner"], dest) for g in state["groups"].values()
            if (dest := failback_move(state, live, hour, g)) is not None]


def failback_move(state, live, hour, g):
    """Where a group a failover put where it is goes back to now, or None: its failback policy
    says to go back now (always, or within the window at this hour), and its placement now
    prefers another node, one that comes before the owner in the preferred owners (or the
    recovery domain's order). Online groups only, none with a move under way."""
    policy, last = g["failover"], g.get("last_failover")
    if (policy["failback"] == "prevent" or not last or last["to"] != g["owner"] or g["special"]
            or g.get("move") or g["persistent_state"] != "online" or g["state"] != "Online"):
        return None
    if policy["failback"] == "window" and not in_window(hour, *policy["failback_window"]):
        return None
    order = domain_order(g["domain"]) if g.get("domain") else g["preferred_owners"]
    best = place_group(state, live, g)
    if best in order and best != g["owner"] and (g["owner"] not in order or order.index(best) < order.index(g["owner"])):
        return best
    return None
