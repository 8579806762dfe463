"""Placement: a pure function (state, live view, request) -> the node a group should run on."""


def place_group(state, live, group, exclude=()):
    """Preferred owners in order, skipping nodes that are not live; else, among the live
    members, nodes that host no group sharing an anti-affinity class name (when any node
    qualifies), then the least loaded; ties by node name. None when no node can host it."""
    candidates = [n for n in sorted(state["members"]) if n in live and n not in exclude]
    for n in group["preferred_owners"]:
        if n in candidates:
            return n
    if not candidates:
        return None
    classes = set(group["anti_affinity"])
    load = {n: 0 for n in candidates}
    clash = set()
    for g in state["groups"].values():
        if g["id"] == group["id"] or g["owner"] not in load or g["persistent_state"] != "online":
            continue
        load[g["owner"]] += 1
        if classes & set(g["anti_affinity"]):
            clash.add(g["owner"])
    apart = [n for n in candidates if n not in clash] or candidates
    return min(apart, key=lambda n: (load[n], n))
