"""The benchmarks: `tools/bench NAME` runs `python -m clusterctl.lab.bench NAME` (__main__.py)."""
