"""The JSON-RPC-aware fault proxy: sits between HAProxy and a node, faults on demand.

Runs as its own process (``python -m harness.proxy``, see `harness.proxy.__main__`),
passes traffic through untouched while no rule is active, and is driven over a small HTTP
control API (`ProxyControl`). Rules (`parse_rule`) are Toxiproxy's transport toxics plus
JSON-RPC faults decided per call.
"""

from harness.proxy.client import ProxyControl
from harness.proxy.process import ProxyProcess
from harness.proxy.rules import KINDS, RPC_KINDS, TRANSPORT_KINDS, Rule, parse_rule

__all__ = [
    "KINDS",
    "RPC_KINDS",
    "TRANSPORT_KINDS",
    "ProxyControl",
    "ProxyProcess",
    "Rule",
    "parse_rule",
]
