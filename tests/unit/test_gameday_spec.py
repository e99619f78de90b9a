"""A game day's spec file: every key read as people write it, every bad one refused naming
the key, the value and the fix; the shipped example loads and describes an hour's day."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.experiment.spec import DEFAULT_LOAD, DEFAULT_SLOS
from harness.gameday import (
    DEFAULT_CHOICES,
    DEFAULT_WINDOW,
    GamedaySpec,
    Window,
    default_choice,
    load_gameday_spec,
    make_schedule,
)
from harness.gameday.spec import gameday_spec_from_document
from harness.load import LoadSpec
from harness.measure import SLO, Safeguard
from harness.stack.backends import plan_stack
from harness.stack.model import StackSpec

EXAMPLE = Path(__file__).parents[2] / "fixtures" / "gameday.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gameday.toml"
    path.write_text(text)
    return path


def test_the_example_file_loads_as_an_hour_on_the_default_stack() -> None:
    spec = load_gameday_spec(EXAMPLE)
    assert spec.duration_s == 3600
    assert spec.window == DEFAULT_WINDOW
    assert [c.kind for c in spec.mix][:3] == ["kill", "pause", "restart"]
    assert spec.mix[0].weight == 3 and spec.mix[0].hold_s == (0, 0)
    assert spec.load is not None and spec.load.seed == spec.seed
    schedule = make_schedule(spec, plan_stack(StackSpec()).state())
    assert len(schedule.episodes) >= 10
    assert "rpc_error" in dict(schedule.left_out)  # the default stack has no fault proxy


def test_every_key_of_the_example_is_commented_on_its_line_or_the_one_above() -> None:
    lines = EXAMPLE.read_text().splitlines()
    keys = [n for n, line in enumerate(lines) if "=" in line and line[0] not in "# "]
    assert len(keys) > 20
    for number in keys:
        assert "#" in lines[number] or lines[number - 1].startswith("#"), lines[number]


def test_the_defaults_are_an_hour_of_office_hours_judged_on_recovery() -> None:
    spec = GamedaySpec()
    assert (spec.duration_s, spec.window, spec.gap_s) == (3600, DEFAULT_WINDOW, (60, 240))
    assert spec.mix == DEFAULT_CHOICES
    assert spec.max_nodes_at_once is None and spec.allow_total_outage is False
    assert SLO.parse("outage_s <= 10") in spec.slos
    assert SLO.parse("mttr_component_s <= 30") in spec.slos
    assert not any(s.metric.startswith("p99") for s in spec.slos)
    assert set(spec.slos) < set(DEFAULT_SLOS)
    assert spec.abort_if == (Safeguard.parse("error_rate_pct > 50 for 30s"),)
    assert spec.load == DEFAULT_LOAD


def test_an_empty_file_is_the_default_day(tmp_path: Path) -> None:
    assert load_gameday_spec(write(tmp_path, "")) == GamedaySpec()


@pytest.mark.parametrize(
    ("written", "seconds"), [("1h", 3600), ("90m", 5400), ("600s", 600), ("1.5h", 5400), (900, 900)]
)
def test_a_duration_is_written_as_people_say_it(written: str | int, seconds: float) -> None:
    assert gameday_spec_from_document({"duration": written}).duration_s == seconds


def test_a_mix_entry_starts_from_its_kinds_defaults(tmp_path: Path) -> None:
    spec = load_gameday_spec(write(tmp_path, '[[mix]]\nkind = "pause"\nweight = 2\n'))
    assert spec.mix == (default_choice("pause", weight=2.0),)
    assert spec.mix[0].hold_s == (2, 10)


def test_a_mix_entry_replaces_what_it_names(tmp_path: Path) -> None:
    text = """
[[mix]]
kind = "latency"
targets = ["backup"]
hold = "7s"
params = { delay_ms = 50 }
"""
    (choice,) = load_gameday_spec(write(tmp_path, text)).mix
    assert choice.targets == ("backup",)
    assert choice.hold_s == (7, 7)
    assert choice.params == {"delay_ms": 50}  # replaced, not merged with jitter_ms


def test_a_load_table_is_the_load_spec_and_load_false_is_none(tmp_path: Path) -> None:
    text = 'seed = 9\n[load]\nprofile = "light"\nrate_per_s = 80\nusers = 8\nworkers = 1\n'
    spec = load_gameday_spec(write(tmp_path, text))
    assert spec.load == LoadSpec(profile="light", rate_per_s=80.0, users=8, workers=1, seed=9)
    none = load_gameday_spec(write(tmp_path, "load = false\n"))
    assert none.load is None and none.abort_if == ()  # the default guard has nothing to watch


def test_safeguards_without_load_are_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        gameday_spec_from_document({"load": False, "abort_if": ["error_rate_pct > 90 for 5s"]})
    assert caught.value.field == "abort_if"
    assert "abort_if = []" in caught.value.fix
    with pytest.raises(ConfigError, match="safeguards watch the load"):
        GamedaySpec(load=None)  # in Python too: say abort_if=()
    assert GamedaySpec(load=None, abort_if=()).abort_if == ()


@pytest.mark.parametrize(
    ("doc", "field", "value"),
    [
        ({"durration": "1h"}, "gameday key", "durration"),
        ({"mix": [{"kind": "kill", "wieght": 2}]}, "mix[0] key", "wieght"),
        ({"load": {"rate": 10}}, "load key", "rate"),
    ],
)
def test_an_unknown_key_is_refused_naming_it_and_the_known_ones(
    doc: dict[str, Any], field: str, value: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        gameday_spec_from_document(doc)
    assert (caught.value.field, caught.value.value) == (field, value)
    assert "takes:" in caught.value.fix


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"duration": "forever"}, "duration"),
        ({"duration": "0s"}, "duration"),
        ({"duration": True}, "duration"),
        ({"window": "Mnd 09:00-17:00"}, "window"),
        ({"window": 9}, "window"),
        ({"seed": "lucky"}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"gap": ["10s"]}, "gap"),
        ({"gap": ["0s", "10s"]}, "gap"),
        ({"gap": ["20s", "10s"]}, "gap"),
        ({"settle": "soon"}, "settle"),
        ({"recovery_timeout": "0s"}, "recovery_timeout"),
        ({"max_nodes_at_once": 0}, "max_nodes_at_once"),
        ({"max_nodes_at_once": "1"}, "max_nodes_at_once"),
        ({"allow_total_outage": "yes"}, "allow_total_outage"),
        ({"slos": "outage_s <= 10"}, "slos"),
        ({"slos": ["outage <= 10"]}, "slo metric"),
        ({"abort_if": ["error_rate_pct > 50"]}, "abort_if"),
        ({"load": {"rate_per_s": "fast"}}, "load.rate_per_s"),
        ({"load": {"users": 0}}, "users"),
        ({"load": "heavy"}, "load"),
        ({"mix": []}, "mix"),
        ({"mix": [{"weight": 2}]}, "mix[0] kind"),
        ({"mix": [{"kind": "meteor"}]}, "mix kind"),
        ({"mix": [{"kind": "kill", "weight": 0}]}, "mix kill weight"),
        ({"mix": [{"kind": "kill", "targets": "primary"}]}, "mix[0].targets"),
        ({"mix": [{"kind": "kill", "targets": ["all"]}]}, "mix kill target"),
        ({"mix": [{"kind": "pause", "hold": ["10s", "2s"]}]}, "mix pause hold"),
        ({"mix": [{"kind": "pause", "hold": ["1s", "2s", "3s"]}]}, "mix[0].hold"),
        ({"mix": [{"kind": "pause", "params": 3}]}, "mix[0].params"),
        ({"mix": [{"kind": "pause", "params": {"grace_s": 1}}]}, "mix pause parameter"),
        ({"mix": ["kill"]}, "mix[0]"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        gameday_spec_from_document(doc)
    assert caught.value.field == field


def test_a_day_longer_than_its_window_is_open_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        gameday_spec_from_document({"duration": "10h"})
    assert "open 8h at a stretch" in caught.value.fix
    spec = gameday_spec_from_document({"duration": "10h", "window": "Sat-Sun 00:00-24:00"})
    assert spec.window.span_s == 48 * 3600


def test_a_file_that_cannot_be_read_or_is_not_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        load_gameday_spec(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_gameday_spec(write(tmp_path, "duration = \n"))


# A gap in seconds or in whole minutes, as a file would write it.
gaps = st.one_of(
    st.tuples(st.integers(1, 1800), st.integers(1, 1800)).map(lambda g: ("s", sorted(g))),
    st.tuples(st.integers(1, 30), st.integers(1, 30)).map(lambda g: ("m", sorted(g))),
)


@settings(max_examples=50, deadline=None)
@given(
    hours=st.integers(1, 8),
    gap=gaps,
    seed=st.integers(0, 2**63 - 1),
    weight=st.floats(0.01, 100),
    hold=st.tuples(st.integers(0, 300), st.integers(0, 300)).map(sorted),
)
def test_a_written_spec_reads_back_as_what_was_written(
    tmp_path_factory: pytest.TempPathFactory,
    hours: int,
    gap: tuple[str, list[int]],
    seed: int,
    weight: float,
    hold: list[int],
) -> None:
    unit, (lo, hi) = gap
    text = f"""
duration = "{hours}h"
window = "always"
seed = {seed}
gap = ["{lo}{unit}", "{hi}{unit}"]
[[mix]]
kind = "pause"
weight = {weight!r}
hold = ["{hold[0]}s", "{hold[1]}s"]
"""
    path = tmp_path_factory.mktemp("spec") / "gameday.toml"
    path.write_text(text)
    spec = load_gameday_spec(path)
    scale = 60 if unit == "m" else 1
    assert spec.duration_s == hours * 3600
    assert spec.window == Window.parse("always")
    assert spec.seed == seed
    assert spec.gap_s == (lo * scale, hi * scale)
    assert spec.mix == (default_choice("pause", weight=weight, hold_s=(hold[0], hold[1])),)
