"""The replicator's command line and the anvil command lines of a one-chain stack."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.chain.anvil import MNEMONIC, follower_args, source_args
from harness.chain.config import parse_args
from harness.chain.delays import Delay
from harness.chain.process import replicator_command
from harness.errors import ConfigError

BASE = ["--source", "http://127.0.0.1:8545/", "--control", "127.0.0.1:0", "--log", "c.jsonl"]


def test_arguments_give_the_source_every_node_and_their_settings() -> None:
    config = parse_args(
        [*BASE, "--node", "node-0=http://127.0.0.1:9000/", "--node=node-1=http://127.0.0.1:9001/",
         "--delay-ms", "node-1=50-300ms", "--lag-blocks", "node-0=2"]
    )  # fmt: skip
    assert config.source_url == "http://127.0.0.1:8545/"
    assert (config.control_host, config.control_port) == ("127.0.0.1", 0)
    assert config.log_path == Path("c.jsonl")
    first, second = config.nodes
    assert (first.name, first.url, first.settings.lag_blocks) == (
        "node-0",
        "http://127.0.0.1:9000/",
        2,
    )
    assert second.settings.delay == Delay(50, 250)
    assert first.settings.delay == Delay()


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (BASE, "--node"),
        (["--node", "a=http://x:1/", "--control", "127.0.0.1:0", "--log", "l"], "--source"),
        ([*BASE[:2], "--node", "a=http://x:1/", "--log", "l"], "--control"),
        ([*BASE[:4], "--node", "a=http://x:1/"], "--log"),
        ([*BASE, "--node", "a=http://x:1/", "--node", "a=http://x:2/"], "--node"),
        ([*BASE, "--node", "a"], "--node"),
        ([*BASE, "--node", "a=ws://x:1/"], "--node"),
        ([*BASE, "--node", "a=http://x:99999/"], "--node"),
        ([*BASE, "--node", "a=http://x:1/", "--delay-ms", "b=5ms"], "--delay-ms"),
        ([*BASE, "--node", "a=http://x:1/", "--delay-ms", "a=later"], "--delay-ms"),
        ([*BASE, "--node", "a=http://x:1/", "--lag-blocks", "a=-1"], "--lag-blocks"),
        ([*BASE[:2], "--control", "0.0.0.0:1", *BASE[4:], "--node", "a=http://x:1/"], "--control"),
        ([*BASE, "--node", "a=http://x:1/", "--bogus", "1"], "argument"),
        ([*BASE, "--node"], "--node"),
        ([*BASE, "--node", "a=http://x:1/", "--log-level", "loud"], "--log-level"),
    ],
)
def test_a_bad_option_is_named(argv: list[str], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_args(argv)
    assert raised.value.field == field


names = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)


@given(
    st.dictionaries(
        names,
        st.tuples(st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 50)),
        min_size=1,
        max_size=4,
    )
)
def test_the_command_line_of_a_config_reads_back_as_that_config(
    nodes: dict[str, tuple[int, int, int]],
) -> None:
    argv = list(BASE)
    for i, (name, (fixed, jitter, lag)) in enumerate(nodes.items()):
        argv += ["--node", f"{name}=http://127.0.0.1:{9000 + i}/"]
        argv += ["--delay-ms", f"{name}={fixed},{jitter}", "--lag-blocks", f"{name}={lag}"]
    config = parse_args(argv)
    command = replicator_command(config)
    assert command[1:3] == ["-m", "harness.chain"]
    assert parse_args(command[3:]) == config


def test_source_and_followers_share_every_genesis_flag_and_only_the_source_mines() -> None:
    extra = ("--gas-limit", "30000000")
    source = source_args(
        "anvil", port=1, block_time_s=0.25, genesis_timestamp=1700000000,
        state_path=Path("s.json"), extra_args=extra,
    )  # fmt: skip
    follower = follower_args(
        "anvil", port=2, genesis_timestamp=1700000000, state_path=Path("f.json"),
        extra_args=extra,
    )  # fmt: skip
    for flag, value in (("--timestamp", "1700000000"), ("--chain-id", "31337"),
                        ("--mnemonic", MNEMONIC), ("--gas-limit", "30000000"),
                        ("--state-interval", "1")):  # fmt: skip
        assert source[source.index(flag) + 1] == value == follower[follower.index(flag) + 1]
    assert source[source.index("--block-time") + 1] == "0.25"
    assert "--no-mining" not in source
    assert "--block-time" not in follower and "--no-mining" in follower
    assert follower[follower.index("--order") + 1] == "fifo"
    assert follower[follower.index("--state") + 1] == "f.json"


@pytest.mark.parametrize(
    "flag", ["--block-time", "-b", "--order", "--mixed-mining", "--order=fees"]
)
def test_a_follower_refuses_flags_that_would_make_it_mine_or_reorder(flag: str) -> None:
    with pytest.raises(ConfigError, match="node_args"):
        follower_args("anvil", port=1, genesis_timestamp=1, extra_args=(flag, "1"))


def test_without_a_state_file_no_state_flags_are_given() -> None:
    args = follower_args("anvil", port=1, genesis_timestamp=1)
    assert "--state" not in args and "--state-interval" not in args
