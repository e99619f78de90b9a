"""Scenario: the stack's steady state holds before any fault is injected.

A scenario is a plain pytest file that imports from `harness` only; copy it and edit it.
"""

from __future__ import annotations

from harness import SteadyState


def test_every_node_answers_and_haproxy_sees_every_server_up(steady_state: SteadyState) -> None:
    assert steady_state.ok, steady_state.summary()
    assert len(steady_state.heads) >= 2
