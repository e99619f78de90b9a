"""What clients saw, as the reports show it: the checker's counts per phase and its first
examples in report.html, one line in the summary; and an older run's document, written
before the check, still renders."""

from __future__ import annotations

from harness.report.html import render_html
from harness.report.summary import clients_line, summarize
from tests.unit.test_report_html import Doc, make_doc, table, tables

KINDS = (
    "head_regressions",
    "unknown_advertised_block",
    "hash_mismatch",
    "vanished_receipts",
    "missing_logs",
)


def checked_doc(recovery_regressions: int = 352) -> Doc:
    """make_doc's run, checked: head regressions in recovery only, with two examples."""
    doc = make_doc()
    episode = doc["episodes"][0]
    for kind in KINDS:
        for phase in ("baseline", "fault", "recovery"):
            episode["measured"][f"{kind}[{phase}]"] = 0.0
    episode["measured"]["head_regressions[recovery]"] = float(recovery_regressions)
    episode["anomalies"] = {
        "head_regressions": [
            {"t_s": 23.1 + i, "answered_s": 23.1015 + i, "session": f"4242.{i}",
             "request": "eth_blockNumber", "response": "head 18",
             "why": "head 18 after 34 had been answered"}
            for i in range(2)
        ]
    }  # fmt: skip
    doc["clients"] = {
        "observations": 17034,
        "sessions": 33,
        "counts": dict.fromkeys(KINDS, 0) | {"head_regressions": recovery_regressions},
        "chain": "no chain known (independent chains): each client's own past",
        "chain_log": None,
        "read_s": 0.08,
        "check_s": 0.05,
    }
    return doc


def test_the_page_counts_each_anomaly_kind_per_phase() -> None:
    rows = table(render_html(checked_doc()), "clients")
    assert [r["anomaly"] for r in rows] == [k.replace("_", " ") for k in KINDS]
    regressions = rows[0]
    assert (regressions["baseline"], regressions["fault"], regressions["recovery"]) == (
        "0",
        "0",
        "352",
    )
    assert all(r["recovery"] == "0" for r in rows[1:])


def test_the_page_shows_the_first_examples_with_their_times_from_the_run_origin() -> None:
    _, examples = tables(render_html(checked_doc()), "clients")
    head, *rows = examples
    assert head == ["sent", "answered", "session", "request", "answer", "why"]
    assert rows[0] == [
        "23.100 s",
        "23.102 s",
        "4242.0",
        "eth_blockNumber",
        "head 18",
        "head 18 after 34 had been answered",
    ]
    assert len(rows) == 2


def test_the_summary_says_what_clients_saw_per_phase() -> None:
    line = clients_line(checked_doc())
    assert line == (
        "what clients saw: head_regressions 352 (recovery 352); "
        "17034 answers to 33 sessions checked"
    )
    assert line in summarize(checked_doc()).splitlines()


def test_the_summary_says_so_when_no_answer_was_out_of_place() -> None:
    line = clients_line(checked_doc(recovery_regressions=0))
    assert line == "what clients saw: no anomaly; 17034 answers to 33 sessions checked"


def test_a_run_written_before_the_check_renders_without_it() -> None:
    doc = make_doc()  # no "clients", no "anomalies", no history metrics
    assert clients_line(doc) is None
    assert not any(line.startswith("what clients saw") for line in summarize(doc).splitlines())
    assert "were not checked in this run" in render_html(doc)
