"""The timing model's numbers (docs/timing.md gives the same table): stop timeouts per agent,
stop bounds, the lease length and the fence delay."""
import pytest

from clusterd import quorum, timing

PROCESS = {"type": "process", "properties": {}}
OCF = {"type": "ocf", "properties": {"script": "/x"}}
DUMMY = {"type": "dummy", "properties": {}}


@pytest.mark.parametrize("rtype,props,expected", [
    ("process", {}, 10.0), ("process", {"stop_timeout": 3}, 3.0),
    ("ocf", {}, 20.0), ("ocf", {"timeout": 40}, 40.0), ("ocf", {"timeout": 40, "stop_timeout": 7}, 7.0),
    ("dummy", {}, 10.0), ("process", None, 10.0),
])
def test_stop_timeout_per_agent(rtype, props, expected):
    assert timing.stop_timeout(rtype, props) == expected


def state(*groups):
    s = {"groups": {}, "resources": {}}
    for i, (owner, resources) in enumerate(groups):
        rids = []
        for j, r in enumerate(resources):
            rid = f"r{i}-{j}"
            s["resources"][rid] = dict(r, id=rid)
            rids.append(rid)
        s["groups"][f"g{i}"] = {"id": f"g{i}", "owner": owner, "resources": rids}
    return s


def test_a_groups_stop_bound_is_the_sum_and_a_nodes_is_its_slowest_group():
    s = state(("n1", [PROCESS, dict(OCF, properties={"script": "/x", "timeout": 30})]),  # 15 + 35
              ("n1", [PROCESS]), ("n2", [DUMMY]), ("n1", []))
    assert timing.group_stop_bound(s, s["groups"]["g0"]) == 50.0
    assert timing.node_stop_bound(s, "n1") == 50.0  # its groups stop side by side
    assert timing.node_stop_bound(s, "n2") == 15.0
    assert timing.node_stop_bound(s, "n3") == 0.0


# token, coefficient, nodes, the slowest group's resources -> effective token, stop bound, fence delay
TABLE = [
    (1.0, 0.65, 2, [PROCESS], 1.00, 15.0, 17.8535),
    (1.0, 0.65, 3, [PROCESS], 1.65, 15.0, 18.5167),
    (1.0, 0.65, 5, [PROCESS], 2.95, 15.0, 19.8429),
    (1.0, 0.65, 3, [OCF], 1.65, 25.0, 28.7187),
    (1.0, 0.65, 3, [dict(OCF, properties={"script": "/x", "timeout": 30}), PROCESS], 1.65, 50.0, 54.2237),
    (1.0, 0.65, 3, [], 1.65, 0.0, 3.2136),
    (20.0, 1.0, 3, [PROCESS], 21.0, 15.0, 38.2576),  # XAPI's token and coefficient
    (20.0, 1.0, 5, [PROCESS], 23.0, 15.0, 40.2980),
    (20.0, 1.0, 3, [OCF], 21.0, 25.0, 48.4596),
    (20.0, 1.0, 5, [OCF], 23.0, 25.0, 50.5000),
]


@pytest.mark.parametrize("token,coefficient,n,resources,effective,stop,delay", TABLE)
def test_the_fence_delay_table(token, coefficient, n, resources, effective, stop, delay):
    eff = quorum.effective_token(token, coefficient, n)
    assert eff == pytest.approx(effective)
    assert timing.lease_length(eff) == pytest.approx(effective)
    s = state(("lost", resources))
    assert timing.node_stop_bound(s, "lost") == stop
    assert timing.fence_delay(timing.lease_length(eff), stop) == pytest.approx(delay, abs=1e-4)


def test_every_term_of_the_fence_delay_counts():
    base = timing.fence_delay(1.65, 15.0)
    stretch = (1 + timing.DRIFT) / (1 - timing.DRIFT)
    assert timing.fence_delay(2.65, 15.0) - base == pytest.approx(stretch)  # the lease
    assert timing.fence_delay(1.65, 16.0) - base == pytest.approx(stretch)  # the stop
    assert base == pytest.approx((1.65 + timing.REACTION + 15.0 + timing.MARGIN) * stretch)
    assert stretch > 1.02
