"""Target selection: which components of a stack a fault hits, by role and blast radius.

``primary``, ``backup`` (every backup), ``haproxy``, a component name (``node-1``),
``random`` / ``one`` (one node, seeded), ``all`` (every node), ``minority`` (fewer than
half of the nodes, at least one, seeded), or a fraction ``0.5`` (that share of the nodes,
rounded up, seeded).
"""

from __future__ import annotations

import math
import random

from harness.errors import ConfigError
from harness.stack.model import ComponentState, StackState

ROLE_WORDS = ("primary", "backup", "random", "one", "all", "minority")


def validate_selector(selector: str) -> None:
    """Raise `ConfigError` for a selector that can never select anything."""
    if selector in ROLE_WORDS or selector == "haproxy" or selector.startswith("node-"):
        return
    try:
        fraction = float(selector)
    except ValueError:
        raise ConfigError(
            "target",
            selector,
            "choose primary, backup, haproxy, a node name (node-0), random, one, all, "
            "minority, or a fraction such as 0.5",
        ) from None
    if not 0 < fraction <= 1:
        raise ConfigError("target", selector, "a fraction of the nodes must be in (0, 1]")


def select(state: StackState, selector: str, seed: int = 0) -> tuple[ComponentState, ...]:
    """The components ``selector`` names in this stack; `ConfigError` if none match."""
    validate_selector(selector)
    nodes = list(state.nodes)
    rng = random.Random(seed)
    if selector == "primary":
        chosen = [n for n in nodes if n.role == "primary"]
    elif selector == "backup":
        chosen = [n for n in nodes if n.role == "backup"]
    elif selector in ("random", "one"):
        chosen = [rng.choice(nodes)]
    elif selector == "all":
        chosen = nodes
    elif selector == "minority":
        chosen = rng.sample(nodes, max(1, (len(nodes) - 1) // 2))
    elif selector == "haproxy" or selector.startswith("node-"):
        try:
            chosen = [state.component(selector)]
        except ConfigError as exc:
            raise ConfigError("target", selector, exc.fix) from None
    else:
        chosen = rng.sample(nodes, max(1, math.ceil(len(nodes) * float(selector))))
    if not chosen:
        raise ConfigError("target", selector, f"matches no component of stack {state.name!r}")
    return tuple(sorted(chosen, key=lambda c: c.name))
