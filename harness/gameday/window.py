"""When a game day may run: days of the week and a time of day in a time zone.

    Window.parse("Mon-Fri 09:00-17:00 Europe/Berlin")
    Window.parse("Sat,Sun 22:00-06:00")        # overnight: from 22:00 until 06:00 next day
    Window.parse("always")

A window is a set of intervals, one per opening day: from the first instant the wall clock
in the zone reads the start time on that day to the first instant after it that it reads
the end time (on the next day for an overnight window). Across a DST change an interval
is an hour longer or shorter in real time; a start or end inside the skipped hour of a
spring-forward night falls on the change itself, and a start or end inside the repeated
hour of an autumn night on its first occurrence. The spec checks a day against its window
before anything starts; the runner asks `next_open` when to begin and `closes_at` when it
must be done.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from harness.errors import ConfigError

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_OF = {name.lower(): i for i, name in enumerate(DAY_NAMES)} | {
    name: i for i, name in enumerate(_FULL_NAMES)
}
_EVERY_DAY = tuple(range(7))
_MINUTES_PER_DAY = 24 * 60
_TIME = re.compile(r"^(\d{1,2}):(\d\d)$")
_UTC = dt.UTC
FORMS = (
    "write DAYS HH:MM-HH:MM [ZONE] (e.g. 'Mon-Fri 09:00-17:00 Europe/Berlin'; days Mon-Fri, "
    "Mon,Wed,Fri, Sat-Sun, * or daily; 22:00-06:00 runs overnight, 24:00 is midnight; ZONE "
    "an IANA name, default UTC) or 'always'"
)


@dataclass(frozen=True)
class Window:
    """Opening days (0 = Monday), a start and an end in minutes after local midnight
    (``end_min`` 1 to 1440; an end before the start means the next day), and an IANA zone.

    Every day from 00:00 to 24:00 is `always`, whatever the zone: it is kept as UTC, so
    equal windows compare equal."""

    days: tuple[int, ...]
    start_min: int
    end_min: int
    zone: str = "UTC"

    def __post_init__(self) -> None:
        days = tuple(sorted(set(self.days)))
        if not days or not all(isinstance(d, int) and 0 <= d <= 6 for d in days):
            raise ConfigError("window days", self.days, "give at least one day, 0 (Mon) to 6 (Sun)")
        object.__setattr__(self, "days", days)
        if not 0 <= self.start_min < _MINUTES_PER_DAY:
            raise ConfigError("window start_min", self.start_min, "choose 0 to 1439 minutes")
        if not 0 < self.end_min <= _MINUTES_PER_DAY:
            raise ConfigError("window end_min", self.end_min, "choose 1 to 1440 minutes")
        if self.start_min == self.end_min:
            raise ConfigError("window", str(self), "it never opens: the start is the end; " + FORMS)
        _zone(self.zone, self.zone)
        if self.always:
            object.__setattr__(self, "zone", "UTC")

    @classmethod
    def parse(cls, text: str) -> Window:
        """``"Mon-Fri 09:00-17:00 Europe/Berlin"`` -> Window; `ConfigError` naming ``text``
        and the accepted forms if it is malformed, names an unknown day or zone, or never
        opens."""
        if not isinstance(text, str):
            raise ConfigError("window", text, FORMS)
        # "Mon, Wed" and "09:00 - 17:00" are the same as "Mon,Wed" and "09:00-17:00".
        tokens = re.sub(r"\s*([,-])\s*", r"\1", text.strip()).split()
        if [t.lower() for t in tokens] == ["always"]:
            return ALWAYS
        if tokens and _is_times(tokens[0]):
            tokens = ["daily", *tokens]
        if len(tokens) not in (2, 3) or not _is_times(tokens[1]):
            raise ConfigError("window", text, FORMS)
        days = _parse_days(tokens[0], text)
        start_text, end_text = tokens[1].split("-")
        start, end = _minutes(start_text, text), _minutes(end_text, text, end=True)
        if start == end or (start == 0 and end == _MINUTES_PER_DAY and start_text == end_text):
            raise ConfigError(
                "window",
                text,
                "it never opens: the start is the end (00:00-24:00 is all day); " + FORMS,
            )
        zone = tokens[2] if len(tokens) == 3 else "UTC"
        _zone(zone, text)
        return cls(days, start, end, zone)

    @property
    def always(self) -> bool:
        """Open every minute of every day."""
        return self.days == _EVERY_DAY and self.start_min == 0 and self.end_min == _MINUTES_PER_DAY

    @property
    def span_s(self) -> float:
        """The longest stretch the window is open at once, in nominal local time (a DST
        night may add or take an hour): what the longest game day in it can last. Infinite
        for `always`."""
        if self.start_min == 0 and self.end_min == _MINUTES_PER_DAY:
            if self.always:
                return math.inf
            longest = max(
                next(k for k in range(1, 8) if (d + k) % 7 not in self.days) for d in self.days
            )
            return longest * 86400.0
        return ((self.end_min - self.start_min) % _MINUTES_PER_DAY) * 60.0

    def contains(self, when: dt.datetime) -> bool:
        """Whether the window is open at ``when`` (an aware datetime)."""
        return self._opening_at(_utc(when)) is not None

    def next_open(self, after: dt.datetime) -> dt.datetime:
        """The first instant at or after ``after`` (aware) at which the window is open, in
        UTC: ``after`` itself if it is open then. A window always opens again within a week
        (one that never opens is refused on construction), so there is always an answer."""
        instant = _utc(after)
        if self._opening_at(instant) is not None:
            return instant
        local = instant.astimezone(_zone(self.zone, self.zone)).date()
        # A spring-forward gap or a skipped calendar day can empty an interval: look on.
        for offset in range(-1, 16):
            day = local + dt.timedelta(days=offset)
            if day.weekday() in self.days:
                opens, closes = _interval(self, day)
                if instant < opens < closes:
                    return opens
        raise AssertionError(f"{self} did not open within 15 days of {after}")  # pragma: no cover

    def closes_at(self, when: dt.datetime) -> dt.datetime | None:
        """When the open window containing ``when`` (aware) closes, in UTC; None if it never
        does (`always`). Back-to-back all-day openings are one stretch. `ValueError` if the
        window is closed at ``when``.

        Times come back in UTC because arithmetic between two datetimes of one ZoneInfo is
        wall-clock arithmetic: across a DST change it is an hour off."""
        found = self._opening_at(_utc(when))
        if found is None:
            raise ValueError(f"the window {self} is closed at {when.isoformat()}")
        day, closes = found
        for offset in range(1, 9):
            following = day + dt.timedelta(days=offset)
            if following.weekday() not in self.days:
                return closes
            opens, next_closes = _interval(self, following)
            if opens != closes:
                return closes
            closes = next_closes
        return None

    def _opening_at(self, instant: dt.datetime) -> tuple[dt.date, dt.datetime] | None:
        """The opening day whose interval holds ``instant`` (UTC), and when that closes. An
        interval of day D ends by D+1 24:00, so only D = the local date or the day before
        can hold it."""
        local = instant.astimezone(_zone(self.zone, self.zone)).date()
        for day in (local - dt.timedelta(days=1), local):
            if day.weekday() in self.days:
                opens, closes = _interval(self, day)
                if opens <= instant < closes:
                    return day, closes
        return None

    def __str__(self) -> str:
        if self.always:
            return "always"
        return (
            f"{_format_days(self.days)} {_hhmm(self.start_min)}-{_hhmm(self.end_min)} {self.zone}"
        )


@functools.lru_cache(maxsize=4096)
def _interval(window: Window, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[opens, closes) in UTC of the opening on local ``day`` (empty if both are equal)."""
    zone = _zone(window.zone, window.zone)
    opens = _first_reading(day, window.start_min, zone)
    end_day = day + dt.timedelta(days=1 if window.end_min <= window.start_min else 0)
    closes = _first_reading(end_day, window.end_min, zone)
    return opens, max(opens, closes)


def _first_reading(day: dt.date, minute: int, zone: ZoneInfo) -> dt.datetime:
    """The first instant (UTC) the wall clock in ``zone`` reads ``minute`` on ``day``: in the
    skipped hour of a spring-forward change, the change itself; in the repeated hour of an
    autumn one, its first pass."""
    day += dt.timedelta(days=minute // _MINUTES_PER_DAY)
    minute %= _MINUTES_PER_DAY
    wall = dt.datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=zone)
    first = wall.replace(fold=0).astimezone(_UTC)
    second = wall.replace(fold=1).astimezone(_UTC)
    if first <= second:  # an ordinary reading (equal) or a repeated one (fold 0 is earlier)
        return first
    # A skipped reading: fold=1 maps it with the offset after the change, fold=0 with the
    # offset before, and the change lies between. Find it to the second.
    low, high = second, first
    before = low.astimezone(zone).utcoffset()
    while high - low > dt.timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high


def _utc(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"give an aware datetime (with a time zone), not {when.isoformat()}")
    return when.astimezone(_UTC)


def _zone(name: str, text: str) -> ZoneInfo:
    """The zone ``name``; `ConfigError` naming ``text`` (what the person wrote) if unknown."""
    try:
        return _zone_named(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(
            "window",
            text,
            f"unknown time zone {name!r}: give an IANA name such as UTC, Europe/Berlin or "
            "America/New_York; " + FORMS,
        ) from None


@functools.lru_cache(maxsize=64)
def _zone_named(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _is_times(token: str) -> bool:
    parts = token.split("-")
    return len(parts) == 2 and all(_TIME.match(p) for p in parts)


def _minutes(text: str, whole: str, end: bool = False) -> int:
    match = _TIME.match(text)
    assert match is not None
    hours, minutes = int(match.group(1)), int(match.group(2))
    if end and (hours, minutes) == (24, 0):
        return _MINUTES_PER_DAY
    if hours > 23 or minutes > 59:
        raise ConfigError(
            "window", whole, f"{text} is not a time of day (00:00 to 23:59); " + FORMS
        )
    value = hours * 60 + minutes
    # An end of 00:00 is midnight at the end of the day: 22:00-00:00 is 22:00-24:00.
    return _MINUTES_PER_DAY if end and value == 0 else value


def _parse_days(text: str, whole: str) -> tuple[int, ...]:
    if text.lower() in ("*", "daily"):
        return _EVERY_DAY
    days: set[int] = set()
    for item in text.split(","):
        ends = item.split("-")
        if len(ends) > 2:
            raise ConfigError(
                "window", whole, f"{item!r} is not a day or a range of days; " + FORMS
            )
        numbers = [_day(name, whole) for name in ends]
        first, last = numbers[0], numbers[-1]
        # A range may wrap past Sunday: Fri-Mon is Fri, Sat, Sun, Mon.
        days.update((first + k) % 7 for k in range((last - first) % 7 + 1))
    return tuple(sorted(days))


def _day(name: str, whole: str) -> int:
    try:
        return _DAY_OF[name.lower()]
    except KeyError:
        raise ConfigError(
            "window",
            whole,
            f"unknown day {name!r}: choose {', '.join(DAY_NAMES)} (or full names); " + FORMS,
        ) from None


def _format_days(days: tuple[int, ...]) -> str:
    """Runs of two or more days as ranges (``Mon-Fri``, ``Fri-Mon`` across the week's end),
    the rest as a list, from the first day after a closed one."""
    if days == _EVERY_DAY:
        return "daily"
    first = next(d for d in range(7) if (d - 1) % 7 not in days)
    parts: list[str] = []
    run: list[int] = []
    for day in [(first + k) % 7 for k in range(7)]:
        if day in days:
            run.append(day)
            continue
        if run:
            names = [DAY_NAMES[d] for d in run]
            parts.append(f"{names[0]}-{names[-1]}" if len(run) > 1 else names[0])
        run = []
    assert not run  # the walk ends on a closed day: the one before ``first``
    return ",".join(parts)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


ALWAYS = Window(_EVERY_DAY, 0, _MINUTES_PER_DAY)
# UTC, not this host's zone: CI machines run in UTC, and a default that moved with the host
# would give the same spec file a different day on a laptop. People pass their own zone.
DEFAULT_WINDOW = Window((0, 1, 2, 3, 4), 9 * 60, 17 * 60, "UTC")
