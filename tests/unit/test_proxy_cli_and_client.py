"""The proxy's command line (`parse_args`) and how `ProxyControl` turns a refusal back
into the `ConfigError` the proxy raised."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError, HarnessError
from harness.proxy.__main__ import parse_args
from harness.proxy.client import ProxyControl, _config_error
from harness.proxy.server import RouteSpec


def test_arguments_give_the_control_address_and_every_route() -> None:
    config = parse_args(
        [
            "--control",
            "127.0.0.1:0",
            "--route",
            "9000=127.0.0.1:8545",
            "--route=9001=node-1:8546",
        ]
    )
    assert (config.control_host, config.control_port) == ("127.0.0.1", 0)
    assert config.routes == (
        RouteSpec(9000, "127.0.0.1", 8545),
        RouteSpec(9001, "node-1", 8546),
    )


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        ([], "--control"),
        (["--control"], "--control"),
        (["--control", "127.0.0.1:1"], "--route"),
        (["--control", "localhost:1", "--route", "2=h:1"], "--control"),
        (["--control", "127.0.0.1:x", "--route", "2=h:1"], "--control"),
        (["--control", "127.0.0.1:1", "--route", "2=h:1", "--route", "2=h:3"], "--route"),
        (["--control", "127.0.0.1:1", "--route", "2:h:1"], "--route"),
        (["--control", "127.0.0.1:1", "--route", "0=h:1"], "--route"),
        (["--control", "127.0.0.1:2", "--route", "2=h:1"], "--control"),
        (["--control", "127.0.0.1:1", "--route", "2=h:1", "--log-level", "loud"], "--log-level"),
        (["--control", "127.0.0.1:1", "--route", "2=h:1", "extra"], "argument"),
    ],
)
def test_bad_arguments_name_the_option(argv: list[str], field: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_args(argv)
    assert refused.value.field == field


values = (
    st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.none()
    | st.booleans()
    | st.lists(st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)


@given(st.sampled_from(["probability", "kind", "route", "latency"]), values, st.text(max_size=40))
def test_a_refusal_message_becomes_the_same_config_error(field: str, value: Any, fix: str) -> None:
    original = ConfigError(field, value, fix)
    again = _config_error(str(original))
    assert str(again) == str(original)
    assert isinstance(again, ConfigError)
    assert again.field == field


def test_a_message_of_another_shape_is_still_a_harness_error() -> None:
    error = _config_error("something odd happened")
    assert type(error) is HarnessError
    assert "something odd happened" in str(error)


def test_a_control_url_must_be_http_with_a_port() -> None:
    with pytest.raises(ConfigError):
        ProxyControl("https://127.0.0.1/")
