"""The control API's routing (`dispatch`) over a proxy that does not listen."""

from __future__ import annotations

import json

from harness.proxy.control import dispatch
from harness.proxy.server import FaultProxy, RouteSpec


def proxy() -> FaultProxy:
    return FaultProxy([RouteSpec(9000, "127.0.0.1", 8545), RouteSpec(9001, "127.0.0.1", 8546)])


def post(p: FaultProxy, doc: object) -> tuple[int, dict[str, object]]:
    status, answer = dispatch(p, "POST", "/rules", json.dumps(doc).encode())
    return status, answer


def test_a_rule_is_added_listed_and_applied_to_its_route_only() -> None:
    p = proxy()
    status, answer = post(p, {"kind": "null_result", "route": 9001})
    assert status == 201
    rule_id = answer["id"]
    assert dispatch(p, "GET", "/rules", b"")[1]["rules"][0]["id"] == rule_id
    assert p.routes[9001].faulty and not p.routes[9000].faulty
    assert dispatch(p, "DELETE", f"/rules/{rule_id}", b"") == (200, {"deleted": True})
    assert dispatch(p, "DELETE", f"/rules/{rule_id}", b"") == (404, {"deleted": False})
    assert not p.routes[9001].faulty


def test_refusals_name_the_field() -> None:
    p = proxy()
    assert post(p, {"kind": "drop", "route": 9002}) == (
        400,
        {"error": "route=9002: is not a route of this proxy; use 9000, 9001 or '*'"},
    )
    status, answer = dispatch(p, "POST", "/rules", b"{nope")
    assert status == 400 and str(answer["error"]).startswith("rule='{nope': is not JSON")


def test_clear_removes_every_rule_and_says_how_many() -> None:
    p = proxy()
    post(p, {"kind": "drop"})
    post(p, {"kind": "latency", "latency": 5})
    assert dispatch(p, "DELETE", "/rules", b"") == (200, {"deleted": 2})
    assert p.rules() == []


def test_stats_health_and_unknown_paths() -> None:
    p = proxy()
    status, stats = dispatch(p, "GET", "/stats", b"")
    assert status == 200
    assert set(stats["routes"]) == {"9000", "9001"}
    assert {
        "requests",
        "passed_through",
        "faulted",
        "non_json_bodies",
        "upstream_errors",
    } <= set(stats["routes"]["9000"])
    assert dispatch(p, "GET", "/health", b"")[0] == 200
    assert dispatch(p, "GET", "/nowhere", b"")[0] == 404
    assert dispatch(p, "PUT", "/rules", b"")[0] == 405
