"""The lab: what runs and breaks clusters on this machine, for the CLI, the tests and the
benchmarks. Nothing here is part of clusterd itself.

    launcher.py   LocalCluster: a cluster's files, its daemons started and stopped, its status
    netns.py      network namespaces, a bridge and nftables rules: real partitions (root)
    witness.py    the witness file resources write, and the double-online check over it
    fuzz.py       hostile inputs for the three doors (API, XenAPI, heartbeats)
    chaos/        seeded fault schedules against a real cluster, with checkers and a report
    bench/        the benchmarks (`tools/bench`)
"""
