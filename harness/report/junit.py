"""JUnit XML for CI (``harness run --junit PATH``): a run's verdicts as test cases, so a
CI system shows a broken SLO the way it shows a failed test.

Place in the flow: renders a run's document (`harness.report.document`), nothing live.

One ``<testsuite name="harness">``: a ``<testcase>`` per SLO verdict (classname the run's
name, name the SLO as written), one for the steady state before and after (and between
episodes), and one for the run not aborting. Each is always present, passing or not, so
CI's per-test history lines up from run to run. ``<properties>`` carry the run id, the
report's path and each SLO's measured value. The shape is the one Jenkins' junit-10.xsd
and Ant's junit-4.xsd agree on (testsuite > properties, testcase > failure, system-out,
system-err), which GitLab, GitHub actions and junitparser read.

Written with the standard library's `xml.etree.ElementTree`: the document is write-only
and four element kinds deep, and ElementTree escapes attributes and text correctly, so a
dependency (junitparser, whose strength is reading and merging reports) would buy nothing.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.report.document import Doc

SUITE = "harness"
# Characters XML 1.0 cannot carry even escaped (an abort reason may quote a process's
# output): replaced, so the file always parses.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: object) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def _number(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def _case(
    suite: ET.Element, classname: str, name: str, time_s: float, failure: tuple[str, str] | None
) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        {"classname": _text(classname), "name": _text(name), "time": f"{time_s:.3f}"},
    )
    if failure is not None:
        message, detail = failure
        node = ET.SubElement(case, "failure", {"message": _text(message), "type": "harness"})
        node.text = _text(detail)


def _steady_failure(label: str, steady: dict[str, Any] | None) -> tuple[str, str] | None:
    if steady is None:
        return f"steady state {label} was not checked", "the run stopped before the check"
    if steady["ok"]:
        return None
    failed = [c for c in steady["checks"] if not c["ok"]]
    return (
        f"steady state {label} not reached: "
        + "; ".join(f"{c['name']}: {c['detail']}" for c in failed),
        "\n".join(
            f"{'ok' if c['ok'] else 'FAILED'}  {c['name']}: {c['detail']}" for c in steady["checks"]
        ),
    )


def junit_xml(doc: Doc) -> str:
    """The run as a JUnit XML document (a str, with its XML declaration)."""
    classname = doc["name"]
    episodes = doc.get("episodes") or []
    several = len(episodes) > 1
    run_dir = Path(doc.get("run_dir") or ".")
    suite = ET.Element("testsuite", {"name": SUITE})
    props = ET.SubElement(suite, "properties")

    def prop(name: str, value: object) -> None:
        ET.SubElement(props, "property", {"name": _text(name), "value": _text(value)})

    prop("run_id", doc["run_id"])
    prop("report", run_dir / "report.html")
    prop("result", run_dir / "result.json")
    fingerprints = doc.get("fingerprints") or {}
    prop("stack_fingerprint", fingerprints.get("stack"))
    prop("template_fingerprint", fingerprints.get("template"))
    seen: set[str] = set()
    for v in doc["slos"]:
        name = f"{v['slo']} (episode {v['episode'] + 1})" if several else v["slo"]
        if name not in seen:
            seen.add(name)
            prop(name, _number(v["measured"]))

    for v in doc["slos"]:
        name = f"episode {v['episode'] + 1}: {v['slo']}" if several else v["slo"]
        failure = None
        if not v["passed"]:
            failure = (
                v["message"],
                f"measured {_number(v['measured'])} against target {v['target']:g} "
                f"({v['slo']}); report: {run_dir / 'report.html'}",
            )
        _case(suite, classname, name, 0.0, failure)

    steadies = [("before", doc.get("steady_state_before"))]
    if several:
        steadies += [
            (f"after episode {e['index'] + 1}", e["steady_state_after"])
            for e in episodes[:-1]
            if e.get("steady_state_after") is not None
        ]
    steadies.append(("after", doc.get("steady_state_after")))
    for label, steady in steadies:
        _case(
            suite,
            classname,
            f"steady state {label}",
            float(steady["duration_s"]) if steady else 0.0,
            _steady_failure(label, steady),
        )
    aborted = doc.get("aborted")
    _case(
        suite,
        classname,
        "run completed without abort",
        float(doc.get("duration_s") or 0.0),
        None if not aborted else (f"run aborted: {aborted}", str(aborted)),
    )

    cases = suite.findall("testcase")
    suite.attrib.update(
        {
            "tests": str(len(cases)),
            "failures": str(sum(1 for c in cases if c.find("failure") is not None)),
            "errors": "0",
            "skipped": "0",
            "time": f"{float(doc.get('duration_s') or 0.0):.3f}",
            # Ant's schema wants a zone-less ISO 8601 time; the run's is UTC.
            "timestamp": str(doc.get("started_at") or "").removesuffix("Z"),
            # Rendered as the run ends, on the host that ran it.
            "hostname": socket.gethostname(),
        }
    )
    verdict = "PASS" if doc["passed"] else ("ABORTED" if aborted else "FAIL")
    ET.SubElement(suite, "system-out").text = _text(
        f"{verdict} {doc['name']} ({doc['run_id']}); report: {run_dir / 'report.html'}"
    )
    ET.SubElement(suite, "system-err").text = ""
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(doc: Doc, path: Path) -> Path:
    """Write `junit_xml` to ``path`` atomically (a reader sees the old file or the new);
    `ConfigError` naming the path if it cannot be written."""
    path = Path(path)
    text = junit_xml(doc)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        tmp = Path(name)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise ConfigError(
            "--junit", str(path), f"cannot write there ({exc.strerror}): choose a writable path"
        ) from exc
    finally:
        if tmp is not None:  # not moved into place: nothing half-written is left
            tmp.unlink(missing_ok=True)
    return path


__all__ = ["junit_xml", "write_junit"]
