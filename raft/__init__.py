"""raft/: a pysyncobj replica of the cluster database and nothing else."""
from .replica import Replica, ReplicaError, pack, unpack

__all__ = ["Replica", "ReplicaError", "pack", "unpack"]
