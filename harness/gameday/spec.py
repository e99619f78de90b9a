"""What a game day is: how long, in which window, which faults how often, what it may never
take down at once, and how it is judged and stopped.

A spec is read from TOML (`load_gameday_spec`; ``fixtures/gameday.example.toml`` is a
commented one) and checked there, before any stack exists, for what holds on every stack;
`harness.gameday.schedule.make_schedule` checks the rest against the planned stack.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.experiment.spec import DEFAULT_LOAD, DEFAULT_SLOS, EpisodeSpec
from harness.gameday.mix import DEFAULT_CHOICES, FaultChoice, check_blast_radius, default_choice
from harness.gameday.schedule import check_duration
from harness.gameday.window import DEFAULT_WINDOW, Window
from harness.load import LoadSpec
from harness.measure import SLO, Safeguard
from harness.measure.metrics import LATENCY_METRICS
from harness.units import MAX_DURATION_S, parse_duration_s

#: A day is judged per episode on whether each fault was recovered from and the stack was
#: healthy between faults: the experiment's SLOs without its latency target. A p99 tuned
#: for a quiet quick scenario flags noise over an hour on a shared host (after a CPU or
#: memory fault especially); latency regressions are `harness compare`'s to catch.
DEFAULT_SLOS_GAMEDAY: tuple[SLO, ...] = tuple(
    s for s in DEFAULT_SLOS if s.metric not in LATENCY_METRICS
)
#: A day runs unattended, so it stops itself on real damage: half of all requests failing
#: for half a minute. One node down behind HAProxy costs at most a detection time of
#: errors (inter x fall = 6 s on the roadmap policy) and at most that node's share of the
#: requests; 50% for 30 s means failover itself is broken.
DEFAULT_ABORT_IF: tuple[Safeguard, ...] = (Safeguard.parse("error_rate_pct > 50 for 30s"),)
#: Gaps of 1 to 4 minutes: with holds and recoveries, about 20 episodes an hour, each
#: baseline long enough to judge the stack healthy before the next fault.
DEFAULT_GAP_S = (60.0, 240.0)
MIN_GAP_S = 1.0  # a baseline holds at least one whole second of load to judge


@dataclass(frozen=True)
class GamedaySpec:
    """A game day. ``gap_s`` is the range each episode's baseline (the steady time before
    its fault) is drawn from; ``max_nodes_at_once`` None means half the nodes, rounded
    down, at least one; ``allow_total_outage`` lifts every blast-radius refusal; ``mix``
    defaults to every kind (`DEFAULT_CHOICES`), of which the schedule keeps those the stack
    can run."""

    duration_s: float = 3600.0
    window: Window = DEFAULT_WINDOW
    mix: tuple[FaultChoice, ...] = DEFAULT_CHOICES
    gap_s: tuple[float, float] = DEFAULT_GAP_S
    settle_s: float = EpisodeSpec.settle_s
    recovery_timeout_s: float = EpisodeSpec.recovery_timeout_s
    max_nodes_at_once: int | None = None
    allow_total_outage: bool = False
    seed: int = 0
    slos: tuple[SLO, ...] = DEFAULT_SLOS_GAMEDAY
    load: LoadSpec | None = DEFAULT_LOAD
    abort_if: tuple[Safeguard, ...] = DEFAULT_ABORT_IF

    def __post_init__(self) -> None:
        for name in ("mix", "slos", "abort_if", "gap_s"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not _is_number(self.duration_s) or not 1 <= self.duration_s <= MAX_DURATION_S:
            raise ConfigError("duration", self.duration_s, "choose 1s to 24h")
        if not isinstance(self.window, Window):
            raise ConfigError("window", self.window, "give a Window (Window.parse(text))")
        if not self.mix or not all(isinstance(c, FaultChoice) for c in self.mix):
            raise ConfigError("mix", self.mix, "give one or more fault choices")
        lo_hi = self.gap_s
        if (
            len(lo_hi) != 2
            or not all(_is_number(g) for g in lo_hi)
            or not MIN_GAP_S <= lo_hi[0] <= lo_hi[1] <= 3600
        ):
            raise ConfigError(
                "gap", self.gap_s, f"give [lo, hi] with {MIN_GAP_S:g}s <= lo <= hi <= 1h"
            )
        if not _is_number(self.settle_s) or not 0 <= self.settle_s <= 3600:
            raise ConfigError("settle", self.settle_s, "choose 0s to 1h")
        if not _is_number(self.recovery_timeout_s) or not 1 <= self.recovery_timeout_s <= 3600:
            raise ConfigError("recovery_timeout", self.recovery_timeout_s, "choose 1s to 1h")
        limit = self.max_nodes_at_once
        if limit is not None and (not _is_int(limit) or not 1 <= limit <= 16):
            raise ConfigError("max_nodes_at_once", limit, "choose 1 to 16, or leave it out")
        if not isinstance(self.allow_total_outage, bool):
            raise ConfigError("allow_total_outage", self.allow_total_outage, "true or false")
        if not _is_int(self.seed):
            raise ConfigError("seed", self.seed, "give a whole number")
        if not all(isinstance(s, SLO) for s in self.slos):
            raise ConfigError("slos", self.slos, "give SLOs (SLO.parse(text))")
        if not all(isinstance(g, Safeguard) for g in self.abort_if):
            raise ConfigError("abort_if", self.abort_if, "give safeguards (Safeguard.parse)")
        if self.load is not None and not isinstance(self.load, LoadSpec):
            raise ConfigError("load", self.load, "give a LoadSpec, or None for probes only")
        if self.abort_if and self.load is None:
            raise ConfigError(
                "abort_if",
                str(self.abort_if[0]),
                "safeguards watch the load, and this day has none: give a load, or no "
                "safeguards (abort_if = [])",
            )
        if self.duration_s > self.window.span_s:
            raise ConfigError(
                "duration",
                _hms(self.duration_s),
                f"never fits in the window {self.window}, open {_hms(self.window.span_s)} at a "
                "stretch: shorten the day or widen the window",
            )
        check_blast_radius(self.mix, None, self.max_nodes_at_once, self.allow_total_outage)
        check_duration(self, self.mix)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _hms(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


# --- the file ----------------------------------------------------------------------------

_KEYS = (
    "abort_if",
    "allow_total_outage",
    "duration",
    "gap",
    "load",
    "max_nodes_at_once",
    "mix",
    "recovery_timeout",
    "seed",
    "settle",
    "slos",
    "window",
)
_MIX_KEYS = ("hold", "kind", "params", "targets", "weight")
_LOAD_FIELDS = {f.name: f for f in dataclasses.fields(LoadSpec)}


def load_gameday_spec(path: Path) -> GamedaySpec:
    """The game day a TOML file describes; every key checked, `ConfigError` naming the key,
    the value and the fix (an unknown key: the known ones)."""
    try:
        doc = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError("gameday file", str(path), f"cannot read it: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("gameday file", str(path), f"not valid TOML: {exc}") from exc
    return gameday_spec_from_document(doc)


def gameday_spec_from_document(doc: dict[str, Any]) -> GamedaySpec:
    """The game day a parsed TOML document describes (see `load_gameday_spec`)."""
    _known(doc, _KEYS, "gameday key", "a game-day file")
    fields: dict[str, Any] = {}
    if "duration" in doc:
        fields["duration_s"] = _duration(doc["duration"], "duration")
    if "window" in doc:
        fields["window"] = Window.parse(_string(doc["window"], "window"))
    if "seed" in doc:
        fields["seed"] = _integer(doc["seed"], "seed")
    if "gap" in doc:
        fields["gap_s"] = _range(doc["gap"], "gap")
    if "settle" in doc:
        fields["settle_s"] = _duration(doc["settle"], "settle", zero=True)
    if "recovery_timeout" in doc:
        fields["recovery_timeout_s"] = _duration(doc["recovery_timeout"], "recovery_timeout")
    if "max_nodes_at_once" in doc:
        fields["max_nodes_at_once"] = _integer(doc["max_nodes_at_once"], "max_nodes_at_once")
    if "allow_total_outage" in doc:
        value = doc["allow_total_outage"]
        if not isinstance(value, bool):
            raise ConfigError("allow_total_outage", value, "write true or false")
        fields["allow_total_outage"] = value
    if "slos" in doc:
        fields["slos"] = tuple(SLO.parse(s) for s in _strings(doc["slos"], "slos"))
    load = _load(doc["load"], fields.get("seed", 0)) if "load" in doc else DEFAULT_LOAD
    fields["load"] = load
    if "abort_if" in doc:
        fields["abort_if"] = tuple(
            Safeguard.parse(s) for s in _strings(doc["abort_if"], "abort_if")
        )
    elif load is None:
        fields["abort_if"] = ()  # the default safeguard watches a load this day does not have
    if "mix" in doc:
        entries = doc["mix"]
        if not isinstance(entries, list) or not entries:
            raise ConfigError("mix", entries, "write one or more [[mix]] tables")
        fields["mix"] = tuple(_choice(entry, i) for i, entry in enumerate(entries))
    return GamedaySpec(**fields)


def _choice(entry: Any, index: int) -> FaultChoice:
    where = f"mix[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(where, entry, "write each [[mix]] entry as a table")
    _known(entry, _MIX_KEYS, f"{where} key", "a [[mix]] entry")
    if "kind" not in entry:
        raise ConfigError(f"{where} kind", None, "every [[mix]] entry names its fault kind")
    changes: dict[str, Any] = {}
    if "weight" in entry:
        changes["weight"] = entry["weight"]
    if "targets" in entry:
        changes["targets"] = tuple(_strings(entry["targets"], f"{where}.targets"))
    if "hold" in entry:
        changes["hold_s"] = _range(entry["hold"], f"{where}.hold", zero=True)
    if "params" in entry:
        if not isinstance(entry["params"], dict):
            raise ConfigError(f"{where}.params", entry["params"], "write a table: params = {...}")
        changes["params"] = dict(entry["params"])
    return default_choice(_string(entry["kind"], f"{where}.kind"), **changes)


def _load(value: Any, seed: int) -> LoadSpec | None:
    if value is False:
        return None
    if not isinstance(value, dict):
        raise ConfigError("load", value, "write a [load] table, or load = false for none")
    _known(value, tuple(_LOAD_FIELDS), "load key", "[load]")
    fields: dict[str, Any] = {"seed": seed}
    for name, raw in value.items():
        wanted = _LOAD_FIELDS[name].type
        if wanted == "str" and not isinstance(raw, str):
            raise ConfigError(f"load.{name}", raw, "write a string")
        if wanted == "int" and not _is_int(raw):
            raise ConfigError(f"load.{name}", raw, "write a whole number")
        if wanted == "float" and not _is_number(raw):
            raise ConfigError(f"load.{name}", raw, "write a number")
        fields[name] = float(raw) if wanted == "float" else raw
    return LoadSpec(**fields)


def _known(table: dict[str, Any], known: tuple[str, ...], field: str, what: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(field, unknown[0], f"unknown; {what} takes: {', '.join(known)}")


def _duration(value: Any, field: str, zero: bool = False) -> float:
    """``"90s"``, ``"10m"``, ``"1h"`` or a number of seconds; 0 only where ``zero``."""
    if _is_number(value):
        seconds = float(value)
    elif isinstance(value, str):
        if zero and value.strip() in ("0", "0s"):
            return 0.0
        seconds = parse_duration_s(value, field)
    else:
        raise ConfigError(field, value, "write a duration such as '90s', '10m' or '1h'")
    if not (0 <= seconds <= MAX_DURATION_S and (zero or seconds > 0)):
        raise ConfigError(field, value, f"choose {'0' if zero else 'more than 0'} to 24h")
    return seconds


def _range(value: Any, field: str, zero: bool = False) -> tuple[float, float]:
    """``["2s", "10s"]`` -> (2.0, 10.0); one duration is a range of one value."""
    if isinstance(value, list):
        if len(value) != 2:
            raise ConfigError(field, value, "write [lo, hi], e.g. ['2s', '10s'], or one duration")
        return _duration(value[0], field, zero), _duration(value[1], field, zero)
    one = _duration(value, field, zero)
    return one, one


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(field, value, "write a string")
    return value


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ConfigError(field, value, "write a list of strings")
    return value


def _integer(value: Any, field: str) -> int:
    if not _is_int(value):
        raise ConfigError(field, value, "write a whole number")
    return int(value)
