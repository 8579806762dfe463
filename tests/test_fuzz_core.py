"""The decoders and validators at clusterd's doors, under the fuzzer's hostile inputs: pure
property tests, no processes. The inputs come from tools/clusterctl/lab/fuzz.py, as in
`tools/bench fuzz` and tests/test_fuzz.py."""
import xmlrpc.client

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from clusterctl.lab import fuzz
from clusterd import membership, rpc, xapi
from clusterd.agents import props
from clusterd.config import ConfigError, check_address
from clusterd.errors import ClusterError

import test_core
import test_groups_core
from builders import booted, create_cmd, ok, refused_before_submit

KEY = membership.heartbeat_key(b"test token")
KNOWN = fuzz.Known(refs=["OpaqueRef:cluster"], sessions=["OpaqueRef:session"],
                   by_param={"group": ["g"], "node": ["node1"]})
FAST = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@FAST
@given(fuzz.heartbeat_inputs(KEY, ["node1", "node2", "node3"]))
def test_a_datagram_is_a_heartbeat_or_a_counted_reason(inp):
    hb = membership.decode(KEY, inp.data)
    assert isinstance(hb, membership.Heartbeat) or hb in membership.REASONS
    if isinstance(hb, membership.Heartbeat):  # the fuzzer never forges a member's real heartbeat
        assert hb.sender not in ("node1", "node2", "node3")


@FAST
@given(fuzz.xmlrpc_inputs(KNOWN))
def test_an_xmlrpc_body_is_a_call_or_malformed(inp):
    try:
        name, params = xapi.parse_call(inp.data)
    except ClusterError as e:
        assert e.code == "MALFORMED_REQUEST"
        return
    assert isinstance(name, str) and name and isinstance(params, list)


@FAST
@given(st.sampled_from(sorted(rpc.CHECKS)), fuzz.HOSTILE)
def test_every_type_check_answers_yes_or_no(ptype, value):
    assert rpc.CHECKS[ptype](value) in (True, False)


@FAST
@given(fuzz.HOSTILE)
def test_every_value_goes_out_as_xapi_xml(value):
    xmlrpc.client.loads(xapi._reply({"Status": "Success", "Value": xapi.to_wire(value)}).body)


# -- defects the fuzzer found: each refused before anything is submitted ------------------------
def test_domain_delete_of_a_group_without_a_domain_takes_no_log_entry():
    """Found by `tools/bench fuzz`: Domain.delete of a group without a domain answered
    DOMAIN_NOT_FOUND only from apply, so it took a log entry and a dedup slot (state_hash moved)."""
    s = booted()
    ok(s, "group.create", name="plain", id="g-plain")
    refused_before_submit(s, "domain.delete", "DOMAIN_NOT_FOUND", group="plain")


@pytest.mark.parametrize("text", ["127.0.0.1:²", "127.0.0.1:٣", "127.0.0.1:１２", "[::1]:²"])
def test_an_address_whose_port_is_not_ascii_digits_is_refused_clearly(text):
    """Found with the fuzzer's odd strings: str.isdigit() takes '²' (int() then raises
    ValueError: INTERNAL_ERROR from Node.add) and '٣' (taken as port 3)."""
    with pytest.raises(ConfigError):
        check_address("raft", text)
    assert props.split_host_port(text) is None


@pytest.mark.parametrize("ptype,value", [("int", 2**64), ("int", -2**63 - 1), ("float", 10.0**30),
                                         ("float", float("nan")), ("float", float("inf")),
                                         ("properties", {"x": 10**30}), ("properties", {"x": [{"y": -2**70}]})])
def test_numbers_that_the_log_cannot_carry_or_that_are_no_quantity_are_refused(ptype, value):
    """Found by the fuzzer: XML-RPC carries ints of any size (a group's flags of 10**30 made
    the database unpackable); a NaN timeout made Events.wait and Operation.wait never answer."""
    assert rpc.CHECKS[ptype](value) is False


@pytest.mark.parametrize("ptype,value", [("int", 2**64 - 1), ("int", -2**63), ("float", 0.5), ("float", 3),
                                         ("properties", {"x": 2**63, "y": 1.5, "z": None})])
def test_the_edges_of_the_numbers_still_pass(ptype, value):
    assert rpc.CHECKS[ptype](value) is True


@pytest.mark.parametrize("fields,expected", [
    ({"cluster": "OpaqueRef:nope", "host": "OpaqueRef:host-node1", "pif": "OpaqueRef:pif-node1"}, "HANDLE_INVALID"),
    ({"cluster": "OpaqueRef:cluster", "host": "G", "pif": ""}, "HANDLE_INVALID"),
    ({"cluster": "OpaqueRef:cluster", "host": "OpaqueRef:host-node1", "pif": "x"}, "HANDLE_INVALID"),
    ({"cluster": "OpaqueRef:cluster", "host": "OpaqueRef:host-node1", "pif": "OpaqueRef:pif-node2"},
     "PIF_NOT_ATTACHED_TO_HOST"),
    ({"cluster": "OpaqueRef:cluster", "host": "OpaqueRef:host-node1", "pif": "OpaqueRef:pif-node1"}, "INVALID_VALUE"),
])
def test_cluster_host_create_refusals_take_no_log_entry(fields, expected):
    """Found by `tools/bench fuzz`: Cluster_host.create had no precondition, so each of its
    refusals took a log entry and a dedup slot."""
    refused_before_submit(booted(), "cluster_host.create", expected, ids=["OpaqueRef:ch-x", "uuid-ch-x"], **fields)


def test_cluster_create_when_a_cluster_exists_takes_no_log_entry():
    cmd = create_cmd(["node1"])
    refused_before_submit(booted(), cmd.pop("op"), "CLUSTER_ALREADY_EXISTS", **cmd)


# the commands whose every refusal the precondition gives (the class of the defects above);
# the other handlers still refuse some cases only from apply (see the refusal tables)
PRECHECKED = {"cluster.create", "cluster_host.create", "cluster.add_to_other_config", "domain.delete",
              "resource.add_dependency", "resource.remove_dependency", "resource.move_to_group",
              "group.delete", "group.online", "group.offline"}
TABLES = [(name, world, prepare, cmd, expected)
          for module, world in ((test_core, lambda: booted(live=["node1", "node2"])), (test_groups_core, test_groups_core.world))
          for name, prepare, cmd, expected in module.REFUSALS if str(cmd.get("op")) in PRECHECKED]


@pytest.mark.parametrize("world,prepare,cmd,expected", [t[1:] for t in TABLES], ids=[t[0] for t in TABLES])
def test_every_refusal_of_these_commands_comes_before_submitting(world, prepare, cmd, expected):
    s = world()
    if prepare:
        prepare(s)
    refused_before_submit(s, cmd["op"], expected, **{k: v for k, v in cmd.items() if k != "op"})
