"""A game day's window: days, hours and a zone, parsed from what people write; when it is
open, when it next opens and when it closes, DST changes included."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.gameday import DEFAULT_WINDOW, GamedaySpec, Window

UTC = dt.UTC


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- parsing -------------------------------------------------------------------------------


def test_the_default_window_is_weekday_office_hours_in_utc() -> None:
    assert Window.parse("Mon-Fri 09:00-17:00 UTC") == DEFAULT_WINDOW
    assert GamedaySpec().window == DEFAULT_WINDOW
    assert str(DEFAULT_WINDOW) == "Mon-Fri 09:00-17:00 UTC"


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("Mon-Fri 09:00-17:00", (0, 1, 2, 3, 4)),
        ("Mon,Wed,Fri 09:00-17:00", (0, 2, 4)),
        ("Mon, Wed , Fri 09:00-17:00", (0, 2, 4)),
        ("Sat-Sun 09:00-17:00", (5, 6)),
        ("Fri-Mon 09:00-17:00", (0, 4, 5, 6)),  # a range across the week's end
        ("* 09:00-17:00", (0, 1, 2, 3, 4, 5, 6)),
        ("daily 09:00-17:00", (0, 1, 2, 3, 4, 5, 6)),
        ("09:00-17:00", (0, 1, 2, 3, 4, 5, 6)),  # no days: every day
        ("monday,SAT 09:00-17:00", (0, 5)),
    ],
)
def test_days_are_ranges_lists_or_every_day(text: str, days: tuple[int, ...]) -> None:
    assert Window.parse(text).days == days


def test_the_zone_defaults_to_utc_and_takes_iana_names() -> None:
    assert Window.parse("Mon 09:00-17:00").zone == "UTC"
    assert Window.parse("Mon 09:00-17:00 America/New_York").zone == "America/New_York"


def test_an_end_of_midnight_is_the_end_of_the_day() -> None:
    assert Window.parse("Mon 22:00-00:00") == Window.parse("Mon 22:00-24:00")
    assert Window.parse("Mon 22:00-24:00").end_min == 24 * 60


def test_every_day_all_day_is_always_whatever_the_zone() -> None:
    assert Window.parse("daily 00:00-24:00 Asia/Tokyo") == Window.parse("always")
    assert str(Window.parse("ALWAYS")) == "always"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("whenever", "write DAYS HH:MM-HH:MM"),
        ("Mon-Fri 9-17", "write DAYS HH:MM-HH:MM"),
        ("Mon-Fri 09:00-17:00 UTC extra", "write DAYS HH:MM-HH:MM"),
        ("Mnd-Fri 09:00-17:00", "unknown day 'Mnd'"),
        ("Mon-Fri 09:00-17:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("Mon-Fri 09:00-17:00 ../../etc/passwd", "unknown time zone"),
        ("Mon-Fri 25:00-26:00", "25:00 is not a time of day"),
        ("Mon-Fri 09:00-09:00", "never opens"),
        ("daily 00:00-00:00", "never opens"),
        ("", "write DAYS HH:MM-HH:MM"),
    ],
)
def test_a_bad_window_is_refused_naming_the_text_and_the_accepted_forms(
    text: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Window.parse(text)
    assert caught.value.field == "window"
    assert caught.value.value == text
    assert says in caught.value.fix
    assert "Mon-Fri 09:00-17:00 Europe/Berlin" in caught.value.fix  # the forms, by example


def test_a_window_of_no_day_never_opens_and_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least one day"):
        Window((), 9 * 60, 17 * 60)


# --- open, next open, closes -------------------------------------------------------------


def test_office_hours_are_open_in_their_own_zone_only() -> None:
    berlin = Window.parse("Mon-Fri 09:00-17:00 Europe/Berlin")
    monday = dt.date(2024, 6, 3)  # summer: CEST, UTC+2
    assert berlin.contains(utc(2024, 6, 3, 7, 0))  # 09:00 in Berlin
    assert not berlin.contains(utc(2024, 6, 3, 6, 59))
    assert not berlin.contains(utc(2024, 6, 3, 15, 0))  # 17:00: closed
    assert not berlin.contains(utc(2024, 6, 1, 10, 0))  # a Saturday
    assert monday.weekday() == 0


def test_an_overnight_window_runs_until_its_end_on_the_next_day() -> None:
    night = Window.parse("Fri 22:00-06:00")
    assert night.contains(utc(2024, 6, 7, 22, 0))  # Friday 22:00
    assert night.contains(utc(2024, 6, 8, 5, 59))  # Saturday morning: still Friday's night
    assert not night.contains(utc(2024, 6, 8, 6, 0))
    assert not night.contains(utc(2024, 6, 8, 23, 0))  # Saturday night is not Friday's
    assert not night.contains(utc(2024, 6, 7, 5, 0))  # Friday morning is Thursday's night
    assert night.closes_at(utc(2024, 6, 8, 1, 0)) == utc(2024, 6, 8, 6, 0)


def test_next_open_is_now_when_open_and_the_next_start_when_closed() -> None:
    office = DEFAULT_WINDOW
    inside = utc(2024, 6, 3, 10, 30)
    assert office.next_open(inside) == inside
    assert office.next_open(utc(2024, 6, 3, 17, 0)) == utc(2024, 6, 4, 9, 0)
    assert office.next_open(utc(2024, 6, 7, 18, 0)) == utc(2024, 6, 10, 9, 0)  # Fri -> Mon


def test_closes_at_is_the_end_of_the_open_stretch_and_none_for_always() -> None:
    assert DEFAULT_WINDOW.closes_at(utc(2024, 6, 3, 10, 30)) == utc(2024, 6, 3, 17, 0)
    weekend = Window.parse("Sat-Sun 00:00-24:00")  # back-to-back days: one stretch
    assert weekend.closes_at(utc(2024, 6, 8, 12, 0)) == utc(2024, 6, 10, 0, 0)
    assert Window.parse("always").closes_at(utc(2024, 6, 8, 12, 0)) is None
    with pytest.raises(ValueError, match="closed"):
        DEFAULT_WINDOW.closes_at(utc(2024, 6, 3, 8, 0))


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        DEFAULT_WINDOW.contains(dt.datetime(2024, 6, 3, 10, 0))


def test_a_window_across_the_spring_change_in_berlin_is_an_hour_shorter() -> None:
    # Sunday 31 March 2024: 02:00 CET becomes 03:00 CEST (at 01:00 UTC).
    early = Window.parse("Sun 01:00-05:00 Europe/Berlin")
    opens = early.next_open(utc(2024, 3, 30, 12, 0))
    assert opens == utc(2024, 3, 31, 0, 0)  # 01:00 CET
    assert early.closes_at(opens) == utc(2024, 3, 31, 3, 0)  # 05:00 CEST: 3 real hours


def test_a_start_in_the_skipped_hour_opens_at_the_change() -> None:
    skipped = Window.parse("Sun 02:30-04:00 Europe/Berlin")  # 02:30 never happens that day
    assert skipped.next_open(utc(2024, 3, 30, 12, 0)) == utc(2024, 3, 31, 1, 0)  # 03:00 CEST
    assert not skipped.contains(utc(2024, 3, 31, 0, 59, 59))  # 01:59:59 CET
    assert skipped.contains(utc(2024, 3, 31, 1, 0))
    assert skipped.closes_at(utc(2024, 3, 31, 1, 0)) == utc(2024, 3, 31, 2, 0)  # 04:00 CEST


def test_a_window_across_the_autumn_change_in_berlin_is_an_hour_longer() -> None:
    # Sunday 27 October 2024: 03:00 CEST becomes 02:00 CET (at 01:00 UTC).
    early = Window.parse("Sun 01:00-05:00 Europe/Berlin")
    opens = early.next_open(utc(2024, 10, 26, 12, 0))
    assert opens == utc(2024, 10, 26, 23, 0)  # 01:00 CEST
    closes = early.closes_at(opens)
    assert closes == utc(2024, 10, 27, 4, 0)  # 05:00 CET
    assert closes is not None and closes - opens == dt.timedelta(hours=5)


def test_a_start_in_the_repeated_hour_opens_at_its_first_pass() -> None:
    repeated = Window.parse("Sun 02:30-04:00 Europe/Berlin")
    assert repeated.next_open(utc(2024, 10, 26, 12, 0)) == utc(2024, 10, 27, 0, 30)  # CEST
    assert repeated.contains(utc(2024, 10, 27, 1, 30))  # 02:30 again, CET: still open
    assert repeated.closes_at(utc(2024, 10, 27, 0, 30)) == utc(2024, 10, 27, 3, 0)


def test_office_hours_follow_the_zone_across_the_change() -> None:
    berlin = Window.parse("Mon-Fri 09:00-17:00 Europe/Berlin")
    assert berlin.next_open(utc(2024, 10, 24, 20, 0)) == utc(2024, 10, 25, 7, 0)  # CEST
    assert berlin.next_open(utc(2024, 10, 25, 20, 0)) == utc(2024, 10, 28, 8, 0)  # CET


# --- properties --------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]
windows = st.one_of(
    st.just(Window.parse("always")),
    st.tuples(
        st.sets(st.integers(0, 6), min_size=1).map(lambda s: tuple(sorted(s))),
        st.integers(0, 24 * 60 - 1),
        st.integers(1, 24 * 60),
        st.sampled_from(ZONES),
    )
    .filter(lambda w: w[1] != w[2])
    .map(lambda w: Window(*w)),
)
# Instants anywhere in a decade, and many within a day and a half of a DST change (Berlin's
# and New York's, in spring and autumn, and Lord Howe's half-hour ones).
CHANGES = [
    utc(2024, 3, 31, 1),
    utc(2024, 10, 27, 1),
    utc(2025, 3, 9, 7),
    utc(2025, 11, 2, 6),
    utc(2024, 4, 6, 15),
    utc(2024, 10, 5, 15, 30),
]
instants = st.one_of(
    st.datetimes(dt.datetime(2020, 1, 1), dt.datetime(2030, 12, 31), timezones=st.just(UTC)),
    st.builds(
        lambda change, s: change + dt.timedelta(seconds=s),
        st.sampled_from(CHANGES),
        st.integers(-36 * 3600, 36 * 3600),
    ),
)


def minutes_between(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Every whole minute in [start, end)."""
    first = start.replace(second=0, microsecond=0)
    if first < start:
        first += dt.timedelta(minutes=1)
    count = max(0, int((end - first).total_seconds() // 60) + 1)
    return [m for m in (first + dt.timedelta(minutes=k) for k in range(count)) if m < end]


@given(windows)
def test_a_window_reads_back_as_itself(window: Window) -> None:
    assert Window.parse(str(window)) == window


@settings(max_examples=60, deadline=None)
@given(windows, instants)
def test_next_open_is_open_and_no_earlier_minute_after_the_time_is(
    window: Window, after: dt.datetime
) -> None:
    opens = window.next_open(after)
    assert opens >= after
    assert window.contains(opens)
    assert not any(window.contains(m) for m in minutes_between(after, opens))


@settings(max_examples=60, deadline=None)
@given(windows, instants)
def test_closes_at_ends_an_unbroken_open_stretch(window: Window, when: dt.datetime) -> None:
    if not window.contains(when):
        with pytest.raises(ValueError):
            window.closes_at(when)
        return
    closes = window.closes_at(when)
    if closes is None:
        assert window.always
        return
    assert closes > when
    assert not window.contains(closes)
    assert all(window.contains(m) for m in minutes_between(when, closes))
