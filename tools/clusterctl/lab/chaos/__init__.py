"""The chaos toolkit: seeded fault schedules (nemeses) against a real cluster while clients
work on it, a JSONL history of everything, pure checkers over it, and a report.

    schedule.py   the seeded fault schedule of a scenario      scenarios.py  the named scenarios
    nemesis.py    applies and heals faults                     sampler.py    each node's own view, sampled
    workload.py   clients doing ops, each one recorded         history.py    the JSONL history
    linear.py     CAS-register linearizability (Wing & Gong)   checkers.py   the other checkers
    verdicts.py   every checker run over one run's records     testcluster.py  the run's cluster: groups, fence, final state
    report.py     results.json, timeline.svg, index.html       runner.py     one run, end to end
    demo.py       `clusterctl demo quorum`                     testres.py    the self-witnessing test resource

`clusterctl chaos ...` is its command line (clusterctl/chaos_cli.py).
"""
