"""tools/bench fuzz: hostile inputs at a live 3-node cluster's three doors (fuzz.py)."""
import time

from rich.table import Table

from .common import arg, console, goal, subcommand, temp_cluster, vars_of


@subcommand("fuzz", "N hostile inputs (msgpack frames, XML-RPC bodies, heartbeat datagrams) at 3 nodes",
            arg("--inputs", type=int, default=100000, help="how many inputs in all (default 100000)"),
            arg("--seed", type=int, default=None, help="hypothesis seed (default: a random one)"),
            arg("--limit", type=float, default=3600.0, help="seconds after which no more inputs are sent"))
def bench_fuzz(args):
    from .. import fuzz  # hypothesis is a test dependency: only this benchmark needs it
    with temp_cluster(3) as cluster:
        campaign = fuzz.Campaign(cluster, deadline=time.monotonic() + args.limit)
        r = campaign.run(fuzz.split(args.inputs), seed=args.seed).summary()
    t = Table("figure", "value", title=f"fuzz: {r['total']:,} inputs at 3 nodes in {r['seconds']:.0f} s "
                                       f"({r['total'] / r['seconds']:,.0f}/s)")
    for door, n in r["inputs"].items():
        t.add_row(f"inputs: {door}", f"{n:,}")
    for key in ("crashes", "state_changes", "internal_errors", "unanswered", "unconfirmed_state_changes",
                "heartbeats_rejected"):
        t.add_row(key.replace("_", " "), str(r[key]))
    s = r["slowest"]
    t.add_row("slowest answer", f"{s['seconds'] * 1000:.1f} ms ({s.get('door')} on {s.get('node')}: {s.get('answer')})")
    console.print(t)
    answers = Table("door: answer", "count", title="answers")
    for k, v in r["answers"].items():
        answers.add_row(k, f"{v:,}")
    console.print(answers)
    for kind, examples in r["examples"].items():
        for e in examples:
            console.print(f"[red]{kind}:[/] {e}")
    complete = r["total"] == args.inputs
    goals = [goal("inputs sent", args.inputs, r["total"], complete, "inputs"),
             goal("crashes (a daemon dead or not answering)", 0, r["crashes"], r["crashes"] == 0, "count"),
             goal("state changes from refused calls", 0, r["state_changes"], r["state_changes"] == 0, "count"),
             goal("INTERNAL_ERROR answers", 0, r["internal_errors"], r["internal_errors"] == 0, "count"),
             goal("inputs without a clear answer", 0, r["unanswered"], r["unanswered"] == 0, "count")]
    return {"params": vars_of(args), **r, "goals": goals}
