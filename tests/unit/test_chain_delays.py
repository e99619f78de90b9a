"""A follower's delay is written ``50ms``, ``50-300ms`` or ``50,250``; anything else is a
ConfigError that names the text and the forms."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.chain.delays import MAX_DELAY_MS, Delay, parse_delay
from harness.errors import ConfigError

millis = st.integers(min_value=0, max_value=100_000) | st.floats(
    min_value=0, max_value=100_000, allow_nan=False
).map(lambda v: round(v, 3))


@pytest.mark.parametrize(
    ("text", "fixed", "jitter"),
    [
        ("50ms", 50, 0),
        ("50", 50, 0),
        ("0ms", 0, 0),
        ("50-300ms", 50, 250),
        ("50ms-300ms", 50, 250),
        (" 50 - 300 ms ", 50, 250),
        ("50,250", 50, 250),
        ("50ms,250ms", 50, 250),
        ("2.5,0.5", 2.5, 0.5),
        ("100-100ms", 100, 0),
    ],
)
def test_each_form_reads_as_fixed_and_jitter(text: str, fixed: float, jitter: float) -> None:
    assert parse_delay(text) == Delay(fixed, jitter)


@pytest.mark.parametrize(
    "text", ["", "ms", "fast", "-5ms", "50s", "1e3", "50-", "300-50ms", "1,2,3", "50 ms x", "nan"]
)
def test_other_text_is_refused_naming_the_text_and_the_forms(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_delay(text, "--delay-ms")
    assert raised.value.field == "--delay-ms"
    assert raised.value.value == text
    assert "50-300ms" in raised.value.fix or "high end" in raised.value.fix


def test_a_delay_beyond_ten_minutes_is_refused() -> None:
    with pytest.raises(ConfigError, match="600000"):
        parse_delay(f"{MAX_DELAY_MS + 1:g}ms")
    with pytest.raises(ConfigError, match="within"):
        parse_delay(f"{MAX_DELAY_MS:g},1")


@given(st.text(max_size=30))
def test_any_text_parses_or_raises_config_error(text: str) -> None:
    try:
        delay = parse_delay(text)
    except ConfigError as exc:
        assert exc.value == text
    else:
        assert delay.fixed_ms >= 0 and delay.jitter_ms >= 0
        assert delay.fixed_ms + delay.jitter_ms <= MAX_DELAY_MS


@given(millis, millis)
def test_the_fixed_jitter_form_reads_back_what_it_writes(fixed: float, jitter: float) -> None:
    delay = Delay(fixed, jitter)
    assert parse_delay(delay.text) == delay


@given(millis, millis)
def test_a_range_reads_as_its_low_end_plus_a_jitter_up_to_its_high_end(
    low: float, span: float
) -> None:
    delay = parse_delay(f"{low:.3f}-{low + span:.3f}ms")
    assert delay.fixed_ms == low
    assert delay.fixed_ms + delay.jitter_ms == pytest.approx(low + span)


@given(millis, millis, st.integers(0, 2**32))
def test_every_draw_lies_between_fixed_and_fixed_plus_jitter(
    fixed: float, jitter: float, seed: int
) -> None:
    delay = Delay(fixed, jitter)
    rng = random.Random(seed)
    for _ in range(20):
        drawn = delay.draw_ns(rng)
        assert round(fixed * 1e6) <= drawn <= round((fixed + jitter) * 1e6)


def test_draws_spread_over_the_jitter() -> None:
    rng = random.Random(1)
    draws = [Delay(50, 250).draw_ns(rng) / 1e6 for _ in range(1000)]
    assert min(draws) < 60 and max(draws) > 290
