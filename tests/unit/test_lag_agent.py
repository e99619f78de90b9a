"""The lag agent's verdict (a pure function of what it saw of every node) and its argv.

Times are monotonic nanoseconds; ``NOW`` is an arbitrary instant, and a sighting
``ms_ago(n)`` is an answer received n milliseconds before it.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.stack.agent import (
    AgentNode,
    AgentPolicy,
    Sighting,
    Verdict,
    command,
    judge,
    parse_args,
)
from harness.stack.local import PlannedStack
from harness.stack.model import StackSpec

NOW = 10**12
POLICY = AgentPolicy(max_lag_blocks=2, max_silence_ms=500)


def seen(head: int, ms_ago: int = 0) -> Sighting:
    return Sighting(head, NOW - ms_ago * 1_000_000)


NEVER = Sighting()


def verdicts(sightings: dict[str, Sighting], policy: AgentPolicy = POLICY) -> dict[str, str]:
    return {name: judge(name, sightings, NOW, policy).reply for name in sightings}


# --- heads ---------------------------------------------------------------------------------


def test_nodes_at_the_best_head_are_up() -> None:
    assert verdicts({"node-0": seen(10), "node-1": seen(10)}) == {
        "node-0": "up #head 10, best 10",
        "node-1": "up #head 10, best 10",
    }


def test_a_node_max_lag_blocks_behind_is_still_up() -> None:
    assert judge("node-0", {"node-0": seen(8), "node-1": seen(10)}, NOW, POLICY).fit


def test_a_node_one_block_more_behind_is_down_with_its_lag_and_the_best_head() -> None:
    sightings = {"node-0": seen(7), "node-1": seen(10)}
    assert verdicts(sightings) == {
        "node-0": "down #3 blocks behind best head 10",
        "node-1": "up #head 10, best 10",
    }


def test_max_lag_blocks_zero_takes_out_any_node_behind() -> None:
    strict = AgentPolicy(max_lag_blocks=0)
    assert not judge("node-0", {"node-0": seen(9), "node-1": seen(10)}, NOW, strict).fit


def test_when_every_head_stops_no_node_is_behind() -> None:
    # All nodes stalled at the same head: nothing better to send the traffic to.
    stalled = {f"node-{i}": seen(42, ms_ago=10 * i) for i in range(3)}
    assert all(judge(n, stalled, NOW, POLICY).fit for n in stalled)


def test_a_restarted_node_is_down_while_it_catches_up_and_up_once_it_has() -> None:
    catching_up = {"node-0": seen(3), "node-1": seen(50)}
    caught_up = {"node-0": seen(49), "node-1": seen(50)}
    assert judge("node-0", catching_up, NOW, POLICY).reply == "down #47 blocks behind best head 50"
    assert judge("node-0", caught_up, NOW, POLICY).fit


def test_a_silent_nodes_last_head_does_not_count_as_the_best() -> None:
    # node-0 was far ahead before it went silent; node-1 is not behind anything that answers.
    sightings = {"node-0": seen(100, ms_ago=2000), "node-1": seen(50)}
    assert verdicts(sightings) == {
        "node-0": "down #no answer for 2000ms",
        "node-1": "up #head 50, best 50",
    }


# --- silence -------------------------------------------------------------------------------


def test_a_node_silent_longer_than_max_silence_is_down_while_another_answers() -> None:
    sightings = {"node-0": seen(10, ms_ago=501), "node-1": seen(10)}
    assert judge("node-0", sightings, NOW, POLICY).reply == "down #no answer for 501ms"


def test_a_node_silent_exactly_max_silence_is_still_up() -> None:
    sightings = {"node-0": seen(10, ms_ago=500), "node-1": seen(10)}
    assert judge("node-0", sightings, NOW, POLICY).fit


def test_a_node_that_never_answered_is_down_while_another_answers() -> None:
    sightings = {"node-0": NEVER, "node-1": seen(10)}
    verdict = judge("node-0", sightings, NOW, POLICY)
    assert verdict.reply == "down #no answer since the agent started"


@pytest.mark.parametrize(
    "sightings",
    [
        {"node-0": seen(10, ms_ago=5000), "node-1": seen(10, ms_ago=5000)},
        {"node-0": NEVER, "node-1": NEVER},
        {"node-0": seen(10, ms_ago=5000)},
    ],
    ids=["all-silent", "none-ever-answered", "single-silent-node"],
)
def test_with_no_other_node_answering_the_agent_leaves_it_to_haproxys_check(
    sightings: dict[str, Sighting],
) -> None:
    assert set(verdicts(sightings).values()) == {"up #no node answers: HAProxy's own check decides"}


def test_a_single_answering_node_is_up() -> None:
    assert verdicts({"node-0": seen(7)}) == {"node-0": "up #head 7, best 7"}


def test_a_node_the_agent_does_not_know_is_judged_as_never_answering() -> None:
    assert judge("node-9", {"node-0": seen(7)}, NOW, POLICY) == Verdict(
        False, "no answer since the agent started"
    )


# --- properties ------------------------------------------------------------------------------

sighting = st.one_of(
    st.just(NEVER),
    st.builds(
        seen,
        head=st.integers(min_value=0, max_value=10**6),
        ms_ago=st.integers(min_value=0, max_value=5000),
    ),
)
stacks = st.dictionaries(
    st.sampled_from([f"node-{i}" for i in range(6)]), sighting, min_size=1, max_size=6
)
policies = st.builds(
    AgentPolicy,
    max_lag_blocks=st.integers(min_value=0, max_value=20),
    max_silence_ms=st.integers(min_value=400, max_value=3000),
)


@given(stacks, policies)
def test_the_agent_never_takes_every_node_out(
    sightings: dict[str, Sighting], policy: AgentPolicy
) -> None:
    assert any(judge(n, sightings, NOW, policy).fit for n in sightings)


@given(stacks, policies)
def test_a_node_is_up_exactly_when_it_answers_within_the_lag_or_none_other_answers(
    sightings: dict[str, Sighting], policy: AgentPolicy
) -> None:
    def fresh(s: Sighting) -> bool:
        return s.answered_ns is not None and NOW - s.answered_ns <= policy.max_silence_ms * 10**6

    answering = {n: s.head for n, s in sightings.items() if fresh(s) and s.head is not None}
    for name in sightings:
        if name in answering:
            expected = max(answering.values()) - answering[name] <= policy.max_lag_blocks
        else:
            expected = not any(n != name for n in answering)
        assert judge(name, sightings, NOW, policy).fit is expected, name


@given(stacks, policies)
def test_every_reply_is_one_line_haproxy_reads_as_up_or_down(
    sightings: dict[str, Sighting], policy: AgentPolicy
) -> None:
    for name in sightings:
        reply = judge(name, sightings, NOW, policy).reply
        word, sharp, reason = reply.partition(" #")
        assert word in ("up", "down") and sharp and reason
        assert "\n" not in reply and "\r" not in reply and "," not in word


# --- policy and argv ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_lag_blocks", -1),
        ("poll_interval_ms", 10),
        ("poll_timeout_ms", 0),
        ("max_silence_ms", 300),  # shorter than one poll interval plus its timeout
    ],
)
def test_a_policy_that_cannot_work_is_a_config_error_naming_the_field(
    field: str, value: int
) -> None:
    with pytest.raises(ConfigError) as caught:
        AgentPolicy(**{field: value})
    assert (caught.value.field, caught.value.value) == (field, value)


def test_the_command_line_says_what_the_agent_reads_back() -> None:
    nodes = [
        AgentNode("node-0", "http://127.0.0.1:8545/", 9001),
        AgentNode("node-1", "http://10.77.0.2:8546/", 9002),
    ]
    policy = AgentPolicy(max_lag_blocks=4, max_silence_ms=900, poll_interval_ms=150)
    argv = command(nodes, 9000, policy, python="python3")
    assert argv[:3] == ["python3", "-m", "harness.stack.agent_main"]
    assert parse_args(argv[3:]) == (nodes, 9000, policy)


def test_a_bad_agent_port_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_args(["--status-port", "9000", "--node", "node-0", "http://127.0.0.1:1/", "99999"])
    assert caught.value.field == "--node"


# --- the stack's plan ------------------------------------------------------------------------


def test_a_hardened_stack_plans_the_agent_before_haproxy_with_a_port_per_node() -> None:
    state = PlannedStack(StackSpec(policy="hardened", nodes=3)).state()
    assert [(c.name, c.role) for c in state.components] == [
        ("node-0", "primary"),
        ("node-1", "backup"),
        ("node-2", "backup"),
        ("lag-agent", "agent"),
        ("haproxy", "balancer"),
    ]
    assert all(n.agent_port is not None for n in state.nodes)
    assert [n.name for n in state.nodes] == ["node-0", "node-1", "node-2"]
    assert state.haproxy_policy == "hardened"
    assert state.haproxy_template is not None
    assert state.haproxy_template.endswith("haproxy-hardened.cfg.j2")


def test_a_roadmap_stack_has_no_agent() -> None:
    state = PlannedStack(StackSpec()).state()
    assert "agent" not in {c.role for c in state.components}
    assert all(n.agent_port is None for n in state.nodes)
    assert state.haproxy_policy == "roadmap"
