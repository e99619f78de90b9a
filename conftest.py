"""The suite's shared defaults, for the scenarios and the harness's own tests alike.

The harness's pytest plugin (fixtures ``stack_spec``, ``stack``, ``chaos_run``...) is
registered by its entry point; this file only holds what every scenario here agrees on.
"""

from __future__ import annotations

import pytest

from harness import LoadSpec


@pytest.fixture(scope="session")
def scenario_load() -> LoadSpec:
    """The scenarios' load: the searcher mix in the open model, at a rate this 2-core CI
    machine carries beside the stack, from one Locust worker (the rest of the cores are
    the stack's)."""
    return LoadSpec(profile="searcher", model="open", rate_per_s=150, users=24, workers=1)
