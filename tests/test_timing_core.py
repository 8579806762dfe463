"""The timing model's numbers (docs/timing.md gives the same table): stop timeouts per agent,
stop bounds, the lease length and the fence delay."""
import dataclasses
import os
import re

import pytest

from clusterd import config, quorum, timing

DOC = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "timing.md")

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


def doc_numbers():
    with open(DOC, encoding="utf-8") as f:
        return f.read().split("## The numbers", 1)[1].split("\n## ", 1)[0]


def test_the_docs_give_the_constants_of_the_code():
    text = doc_numbers()
    assert f"`REACTION = {timing.REACTION:g} s`" in text and f"`MARGIN = {timing.MARGIN:g} s`" in text
    assert f"`DRIFT = {timing.DRIFT * 100:g} %`" in text and f"`KILL_WAIT = {timing.KILL_WAIT:g} s`" in text
    stretch = (1 + timing.DRIFT) / (1 - timing.DRIFT)
    assert f"= {stretch:.4f}`" in text
    assert f"process {timing.DEFAULT_STOP_TIMEOUT:g} s" in text and f"(default {timing.OCF_DEFAULT_TIMEOUT:g} s)" in text


def test_the_docs_table_is_the_formula_for_the_default_settings_and_xapis():
    """Every row of docs/timing.md's table, computed again from the code: the effective token
    from the settings (the defaults: config.Config's), the stop bound of one resource of the
    named agent, the fence delay to the hundredth."""
    defaults = {f.name: f.default for f in dataclasses.fields(config.Config)}
    settings = {"default": (defaults["token_timeout"], defaults["token_coefficient"]), "XAPI": (20.0, 1.0)}
    rows = [r for r in doc_numbers().splitlines() if r.startswith(("| default", "| XAPI"))]
    assert len(rows) >= 4 and {r.split()[1].rstrip(":") for r in rows} == set(settings)
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        token, coefficient = settings[cells[0].split(":")[0]]
        named = re.search(r"token ([\d.]+) s, coefficient ([\d.]+) s", cells[0])
        if named:
            assert (float(named[1]), float(named[2])) == (token, coefficient), row
        eff = quorum.effective_token(token, coefficient, int(cells[1]))
        assert cells[2] == f"{eff:g} s", row
        rtype = "ocf" if "ocf" in cells[3] else "process"
        stop = timing.node_stop_bound(state(("n", [OCF if rtype == "ocf" else PROCESS])), "n")
        assert cells[3].startswith(f"{stop:g} s"), row
        terms = re.fullmatch(r"\(([\d.]+) \+ ([\d.]+) \+ ([\d.]+) \+ ([\d.]+)\) × ([\d.]+) = \*\*[\d.]+ s\*\*", cells[4])
        assert terms, row  # every number of the formula, written out
        assert [float(x) for x in terms.groups()] == pytest.approx(
            [eff, timing.REACTION, stop, timing.MARGIN, (1 + timing.DRIFT) / (1 - timing.DRIFT)], abs=5e-5), row
        delay = float(re.search(r"\*\*([\d.]+) s\*\*", cells[4])[1])
        assert delay == round(timing.fence_delay(timing.lease_length(eff), stop), 2), row
