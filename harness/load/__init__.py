"""Load: a realistic searcher JSON-RPC workload, driven by Locust out of process."""

from harness.load.runner import LoadError, LoadRun, LoadSpec, Sample
from harness.load.workload import PROFILES, Profile, load_profile, prepare_chain

__all__ = [
    "PROFILES",
    "LoadError",
    "LoadRun",
    "LoadSpec",
    "Profile",
    "Sample",
    "load_profile",
    "prepare_chain",
]
