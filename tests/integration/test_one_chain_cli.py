"""Bad input for one chain, as a user types it: one clear message, exit 2, nothing started."""

from __future__ import annotations

import pytest

from tests.integration.test_cli import harness, no_stack_left


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--chain", "independent", "--fault", "lag"], "--chain one"),
        (["--chain", "independent", "--fault", "reorg", "-p", "depth=2"], "--chain one"),
        (["--chain", "one", "--fault", "reorg", "-p", "depth=100"], "depth"),
        (["--chain", "one", "--propagation-delay", "soon"], "50-300ms"),
        (["--chain", "one", "--node-lag", "node-1:3"], "NODE=BLOCKS"),
        (["--chain", "one", "--node-lag", "node-9=3"], "node-1"),
        (["--chain", "one", "--node", "geth"], "--chain independent"),
    ],
)
def test_bad_one_chain_input_is_exit_2_naming_the_fix_and_starts_nothing(
    args: list[str], words: str
) -> None:
    result = harness("run", "--no-load", *args)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert no_stack_left()
