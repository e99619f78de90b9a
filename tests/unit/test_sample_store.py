"""The probes' sample store: what goes in comes out, in a fraction of the memory."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.measure.samples import ProbeSample, SampleStore

samples = st.builds(
    ProbeSample,
    target=st.sampled_from(["frontend", "node-0", "node-1"]),
    intended_ns=st.integers(0, 10**12),
    latency_us=st.floats(0, 1e7),
    outcome=st.sampled_from(["ok", "timeout", "http_503", "connect_refused"]),
    head=st.one_of(st.none(), st.integers(0, 10**9)),
)


@given(st.lists(samples, max_size=60))
def test_every_sample_comes_back_as_it_went_in(given_samples: list[ProbeSample]) -> None:
    store = SampleStore()
    for s in given_samples:
        store.append(s)
    assert len(store) == len(given_samples)
    assert sorted(store.since(), key=repr) == sorted(given_samples, key=repr)


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=50), st.integers(0, 1000))
def test_since_gives_the_samples_due_from_then_within_the_stragglers_slack(
    times_ms: list[int], start_ms: int
) -> None:
    # Appended in order, but for stragglers of at most 100 ms.
    ordered = sorted(times_ms)
    store = SampleStore()
    for t in ordered:
        store.append(ProbeSample("frontend", t * 1_000_000, 1.0, "ok"))
    got = store.since(start_ms * 1_000_000, slack_ns=100_000_000)
    assert sorted(s.intended_ns for s in got) == [t * 1_000_000 for t in ordered if t >= start_ms]
