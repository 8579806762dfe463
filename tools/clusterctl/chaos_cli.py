"""`clusterctl chaos list|run|batch` and `clusterctl demo quorum`."""
import json
import os
import re
import signal

import click

from clusterd.errors import ClusterError

from .lab.chaos.scenarios import SCENARIOS
from .lab.chaos.testcluster import SetupError
from .lab.launcher import LauncherError
from .lab.netns import NetnsError

# a run that could not be set up (or its cluster not reached): a clear message, exit status 2
SETUP_ERRORS = (LauncherError, NetnsError, ClusterError, SetupError, OSError)


def _scenario(name):
    if name not in SCENARIOS:
        raise click.BadParameter(f"no scenario {name!r}; `clusterctl chaos list` shows them: "
                                 + ", ".join(SCENARIOS), param_hint="--scenario")
    return SCENARIOS[name]


def _seeds(text):
    """"7", "1-50" or "1,4,9" -> a list of ints (at most 1000)."""
    if not re.fullmatch(r"\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*", text or ""):
        raise click.BadParameter(f"expected seeds like 7, 1-50 or 1,4,9; got {text!r}", param_hint="--seeds")
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        lo, hi = int(a), int(b or a)
        if hi < lo or hi - lo > 1000:
            raise click.BadParameter(f"bad seed range {part.strip()!r}", param_hint="--seeds")
        out += range(lo, hi + 1)
    if len(out) > 1000:
        raise click.BadParameter("at most 1000 seeds", param_hint="--seeds")
    return out


duration_option = click.option("--duration", type=click.IntRange(20, 3600), default=None,
                               help="seconds of faults (default: the scenario's)")
nodes_option = click.option("--nodes", type=click.IntRange(3, 7), default=None,
                            help="cluster size (default: the scenario's)")
fence_option = click.option("--fence", type=click.Choice(["process", "watchdog"]), default="process",
                            show_default=True,
                            help="how the leader fences a lost node: kill it (process) or wait the fence "
                                 "delay while it stops its resources itself (watchdog; network faults only)")
tolerance_option = click.option("--tolerance", type=click.FloatRange(0, 60), default=3.0, show_default=True,
                                help="seconds beyond the effective token for a minority to report not quorate")


def run_options(command):
    """The options a chaos run and a batch share: duration, cluster size, tolerance, fence."""
    for option in (fence_option, tolerance_option, nodes_option, duration_option):
        command = option(command)
    return command


def _interrupt_on_sigterm():
    """SIGTERM unwinds like Ctrl-C, so that every fault is healed and the cluster removed."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)


def register(cli, fail):
    @cli.group("chaos")
    def chaos():
        """Seeded fault schedules against a real local cluster, checked and reported."""

    @chaos.command("list")
    def chaos_list():
        """The scenarios, and whether they need root."""
        from .lab.chaos.runner import missing_capability
        for s in SCENARIOS.values():
            why = missing_capability(s)
            need = "root+nft" if s.needs_root else "any user"
            click.echo(f"{s.name:17} {need:9} {s.nodes} nodes {s.duration:4d} s  {s.description}"
                       + (f"  [cannot run here: {why}]" if why else ""))

    @chaos.command("run")
    @click.option("--scenario", "name", required=True, help="a name from `clusterctl chaos list`")
    @click.option("--seed", type=click.IntRange(0, 2**63 - 1), required=True)
    @run_options
    @click.option("--report", "report_dir", required=True, type=click.Path(file_okay=False),
                  help="dir for results.json, timeline.svg, index.html, history.jsonl, witness.jsonl")
    def chaos_run(name, seed, duration, nodes, tolerance, fence, report_dir):
        """Run one scenario; exit 1 when a checker fails."""
        from .lab.chaos.runner import ChaosError, run
        from .lab.chaos.schedule import ScheduleError
        scenario = _scenario(name)
        _interrupt_on_sigterm()
        try:
            results = run(scenario, seed, duration or scenario.duration, report_dir, nodes, tolerance,
                          say=click.echo, fence=fence)
        except (ChaosError, ScheduleError) as e:
            fail(str(e), 2)
        except SETUP_ERRORS as e:
            fail(f"the run broke off: {e}", 2)
        for check, verdict in results["verdicts"].items():
            click.echo(f"{check:18} {'pass' if verdict['valid'] else 'FAIL'}")
        click.echo(f"{'PASS' if results['valid'] else 'FAIL'} in {results['wall_seconds']} s; "
                   f"report: {os.path.join(report_dir, 'index.html')}")
        raise SystemExit(0 if results["valid"] else 1)

    @chaos.command("batch")
    @click.option("--scenario", "name", default="mixed", show_default=True)
    @click.option("--seeds", "seed_text", default="1-50", show_default=True, help="e.g. 1-50 or 3,7,9")
    @run_options
    @click.option("--report", "report_dir", required=True, type=click.Path(file_okay=False),
                  help="one subdir per seed, and summary.json")
    def chaos_batch(name, seed_text, duration, nodes, tolerance, fence, report_dir):
        """Run a scenario once per seed; print a summary table; exit 1 when any run fails."""
        from rich.console import Console
        from rich.table import Table
        from .lab.chaos.runner import ChaosError, run
        from .lab.chaos.schedule import ScheduleError
        scenario, seeds = _scenario(name), _seeds(seed_text)
        _interrupt_on_sigterm()
        rows = []
        for seed in seeds:
            try:
                r = run(scenario, seed, duration or scenario.duration, os.path.join(report_dir, f"seed-{seed}"),
                        nodes, tolerance, say=lambda line: None, fence=fence)
                rows.append({"seed": seed, "valid": r["valid"], "wall": r["wall_seconds"],
                             "faults": len(r["faults"]),
                             "failed": [k for k, v in r["verdicts"].items() if not v["valid"]],
                             "ops": sum(c["ok"] for c in r["op_counts"].values())})
            except (ChaosError, ScheduleError) as e:
                fail(str(e), 2)
            except Exception as e:  # one run broke: say so and go on with the next seed
                rows.append({"seed": seed, "valid": False, "error": f"{type(e).__name__}: {e}", "failed": ["run"]})
            click.echo(f"seed {seed}: {'pass' if rows[-1]['valid'] else 'FAIL ' + ','.join(rows[-1]['failed'])}")
        with open(os.path.join(report_dir, "summary.json"), "w") as f:
            json.dump(rows, f, indent=2)
        t = Table("seed", "verdict", "faults", "ok ops", "seconds", "failed checkers")
        for r in rows:
            t.add_row(str(r["seed"]), "pass" if r["valid"] else "[red]FAIL[/]", str(r.get("faults", "-")),
                      str(r.get("ops", "-")), str(r.get("wall", "-")),
                      r["error"].splitlines()[0][:100] if r.get("error") else ", ".join(r["failed"]))
        Console().print(t)
        passed = sum(r["valid"] for r in rows)
        click.echo(f"{passed}/{len(rows)} runs passed; reports in {report_dir}")
        raise SystemExit(0 if passed == len(rows) else 1)

    @cli.group("demo")
    def demo():
        """Demonstrations you can watch."""

    @demo.command("quorum")
    @click.option("--plain", is_flag=True, help="print lines and plain tables (the default without a TTY)")
    def demo_quorum(plain):
        """5 nodes (netns, root): partition 3|2, the majority keeps quorum and its groups, the
        minority loses both; heal and rejoin. Under 2 minutes; leaves nothing behind."""
        from .lab.chaos.demo import DemoError, run_demo
        _interrupt_on_sigterm()
        try:
            ok = run_demo(plain=plain)
        except (DemoError, *SETUP_ERRORS) as e:
            fail(str(e), 2)
        raise SystemExit(0 if ok else 1)
