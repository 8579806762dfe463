"""The chaos toolkit end to end: the smoke scenario and the quorum demo on real daemons in
network namespaces (root + nftables), and the command line's answers to bad input."""
import json
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from clusterctl.lab import netns
from clusterctl.cli import cli

CAPS = netns.capabilities()
MISSING = [why for ok, why in ((CAPS["root"], "not root"), (CAPS["netns"], "no `ip netns`"),
                               (CAPS["nft"], "no nft (nftables)")) if not ok]
needs_testbed = pytest.mark.skipif(bool(MISSING), reason="the smoke and the demo cut the network: "
                                   + ", ".join(MISSING))
CLUSTERCTL = [sys.executable, "-c", "from clusterctl.cli import main; main()"]


def test_chaos_list_names_every_scenario_and_what_it_needs():
    out = CliRunner().invoke(cli, ["chaos", "list"])
    assert out.exit_code == 0
    for name in ("smoke", "kill", "pause", "partition", "leader", "owner", "bridge", "one-way", "loss", "mixed"):
        assert re.search(rf"^{re.escape(name)}\s", out.output, re.M), name
    assert re.search(r"^kill\s+any user", out.output, re.M) and re.search(r"^smoke\s+root\+nft", out.output, re.M)


@pytest.mark.parametrize("args, says", [
    (["chaos", "run", "--scenario", "nope", "--seed", "1", "--report", "R"], "no scenario 'nope'"),
    (["chaos", "run", "--scenario", "smoke", "--seed", "-1", "--report", "R"], "--seed"),
    (["chaos", "run", "--scenario", "smoke", "--seed", "x", "--report", "R"], "--seed"),
    (["chaos", "run", "--scenario", "smoke", "--seed", "1", "--duration", "5", "--report", "R"], "--duration"),
    (["chaos", "run", "--scenario", "smoke", "--seed", "1", "--nodes", "2", "--report", "R"], "--nodes"),
    (["chaos", "batch", "--seeds", "1-x", "--report", "R"], "--seeds"),
    (["chaos", "batch", "--seeds", "9-1", "--report", "R"], "bad seed range"),
    (["chaos", "batch", "--scenario", "../etc", "--seeds", "1", "--report", "R"], "no scenario"),
])
def test_bad_input_is_a_clear_error_and_runs_nothing(tmp_path, args, says):
    args = [str(tmp_path / "r") if a == "R" else a for a in args]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 2 and says in out.output, out.output
    assert not os.path.exists(tmp_path / "r")


def test_a_duration_too_short_for_the_smoke_says_how_long_it_needs(tmp_path):
    out = CliRunner().invoke(cli, ["chaos", "run", "--scenario", "smoke", "--seed", "1", "--duration", "20",
                                   "--report", str(tmp_path / "r")])
    assert out.exit_code == 2 and "needs a duration of at least" in out.output, out.output


@needs_testbed
def test_the_smoke_scenario_passes_every_checker_and_writes_its_report(tmp_path):
    report = tmp_path / "smoke"
    run = subprocess.run(CLUSTERCTL + ["chaos", "run", "--scenario", "smoke", "--seed", "1",
                                       "--report", str(report)], capture_output=True, text=True, timeout=400)
    results = json.loads((report / "results.json").read_text())
    failed = {k: v for k, v in results["verdicts"].items() if not v["valid"]}
    assert run.returncode == 0 and not failed, f"{run.stdout}\n{run.stderr}\n{json.dumps(failed)[:3000]}"
    assert set(results["verdicts"]) == {"no_double_online", "nothing_lost", "convergence", "cas_linearizable",
                                        "quorum_truth"}
    assert [f["fault"] for f in results["faults"]] == ["kill", "partition-halves", "isolate-leader"]
    assert all(f["stop"] is not None for f in results["faults"])  # every fault healed
    assert results["op_counts"]["cas"]["ok"] > 0 and results["verdicts"]["no_double_online"]["starts"] >= 3
    assert (report / "timeline.svg").read_text().startswith("<svg")
    assert "timeline.svg" in (report / "index.html").read_text()
    cluster_dir = re.search(r"cluster in (\S+)", run.stdout).group(1)
    assert not os.path.exists(cluster_dir)  # the run's cluster is gone


@needs_testbed
def test_the_quorum_demo_runs_without_a_tty_and_leaves_nothing_behind():
    run = subprocess.run(CLUSTERCTL + ["demo", "quorum"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    out = run.stdout
    for line in ("partition node1,node2,node3 | node4,node5", "node4,node5 report not quorate",
                 "stopped their groups themselves", "runs every group", "all 5 nodes rejoined",
                 "no group ever ran on two nodes at once"):
        assert line in out, out
    cluster_dir = re.search(r"\((/tmp/cd-chaos-demo-\S+)\)", out).group(1)
    assert not os.path.exists(cluster_dir)
    listed = netns.run("ip", "netns", "list").stdout
    assert not [b for b in netns.plan(cluster_dir, 5)["nodes"] if b["ns"] in listed]


@needs_testbed
def test_every_network_fault_kind_is_accepted_by_nftables_and_healed(tmp_path):
    bed = netns.plan(str(tmp_path), 3)
    netns.setup(bed)
    try:
        netns.partition(bed, [0], [1, 2])
        netns.drop(bed, 1, 2)
        netns.loss(bed, 2, 30)
        rules = netns.run("nft", "list", "chain", "inet", netns.TABLE, "input", ns=bed["nodes"][2]["ns"]).stdout
        assert "numgen random mod 100 < 30 drop" in rules
        netns.heal(bed)
        rules = netns.run("nft", "list", "chain", "inet", netns.TABLE, "input", ns=bed["nodes"][2]["ns"]).stdout
        assert "drop" not in rules
    finally:
        netns.teardown(bed)
