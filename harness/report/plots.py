"""The plots of report.html: a run's timelines from its result.json, drawn on the run's
time axis (seconds from the origin) as inline SVG.

One figure stacks four panels over a shared time axis, so a spike in one lines up with the
others: latency per second (p50, p99, max; log scale), error rate per second, probe
availability per target and window, and head lag per node and through the frontend. Above
them a lane names the moments of each episode: the fault (shaded where it was in effect),
the client-visible outage (shaded), TTD and the component's return (vertical lines).

Every drawn element carries an SVG id (``series-p99``, ``series-availability-node-0``,
``fault-window-1-latency``...), so a test or a reader's tool can find it. Timelines longer
than `MAX_POINTS` are aggregated into coarser windows that keep what matters: counts are
summed (so a rate stays exact), the worst latency and lag of a window are kept.
Drawn with matplotlib's object API (no pyplot, no global figure state); the SVG backend
needs no display.
"""

from __future__ import annotations

import bisect
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import matplotlib
import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from harness.report.alerts import alert_rows
from harness.report.document import Doc

Array = npt.NDArray[np.float64]

MAX_POINTS = 4000
WIDTH_IN = 11.0
LANE_ROWS = 3
ZOOM_WORTH = 8  # an episode gets a zoom if the run is this many times longer than it
# A fault shorter than this share of the axis (a SIGKILL takes milliseconds) is drawn this
# wide, or it would not be seen at all.
MIN_WINDOW_FRACTION = 0.004
FAULT_COLOR = "#d62728"
OUTAGE_COLOR = "#9467bd"
TTD_COLOR = "#ff7f0e"
BACK_COLOR = "#2ca02c"
ALERT_COLOR = "#e6550d"
RESOLVED_COLOR = "#3182bd"
NODE_COLORS = ("#1f77b4", "#8c564b", "#17becf", "#bcbd22", "#7f7f7f", "#e377c2")
RC: dict[str, Any] = {
    "svg.fonttype": "none",  # text stays text: small, searchable, no glyph paths
    "text.parse_math": False,  # a "$" in a node's name is a dollar, not TeX
    "path.simplify": True,
    "path.simplify_threshold": 0.2,
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.titlelocation": "left",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
}


@dataclass(frozen=True, eq=False)
class Series:
    """One line of a panel, a value per window drawn as steps: ``gid`` becomes its SVG id;
    NaN in ``values`` is a gap."""

    gid: str
    label: str
    t_s: Array
    values: Array
    color: str
    width: float = 1.1
    zorder: float = 3.0


@dataclass(frozen=True)
class Panel:
    """One plot of the stack: what it shows, its lines, and how its y axis is scaled."""

    key: str
    title: str
    ylabel: str
    series: tuple[Series, ...]
    scale: str  # "log" latency, "percent-failed", "percent-answered", "blocks"


@dataclass(frozen=True)
class Window:
    """A span of one episode to shade: the fault in effect, or the outage clients saw."""

    kind: str  # "fault-window" or "outage"
    episode: int  # 1-based
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Marker:
    """A moment of one episode: the fault, TTD, outage start, service and component back,
    an alert delivered firing or resolved."""

    # "fault", "ttd", "outage-start", "service-back", "component-back", and with
    # --prometheus "alert-fired", "alert-resolved" (one per alert of the episode)
    kind: str
    episode: int  # 1-based
    t_s: float
    label: str
    alert: str = ""  # the alert an alert mark is of


@dataclass(frozen=True)
class Timelines:
    """Everything the figure draws, read once from the document."""

    panels: tuple[Panel, ...]
    windows: tuple[Window, ...]
    markers: tuple[Marker, ...]
    extent_s: tuple[float, float]
    aggregated_s: dict[str, float]  # panel key -> window width when aggregated
    zooms: dict[int, tuple[float, float]]  # episode (1-based) -> the span its zoom shows


def slug(name: str) -> str:
    """A doc string made safe for an SVG id: ``node-0`` stays, anything odd becomes ``-``."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name) or "-"


def _label(text: str) -> str:
    # matplotlib's legend leaves out a label that starts with "_".
    return " " + text if text.startswith("_") else text


def _array(values: Sequence[float | None]) -> Array:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


def _within(rows: list[Any], span: tuple[float, float] | None) -> list[Any]:
    """The rows (sorted by time, time first) in ``span``, with one either side so a line
    runs to the edge; all of them without a span."""
    if span is None or not rows:
        return rows
    times = [r[0] for r in rows]
    lo = max(0, bisect.bisect_left(times, span[0]) - 1)
    return rows[lo : bisect.bisect_right(times, span[1]) + 1]


def _factor(n: int) -> int:
    return max(1, math.ceil(n / MAX_POINTS))


def _reduce(values: Array, k: int, how: str) -> Array:
    """``values`` in groups of ``k`` consecutive points: summed, or their worst (NaN-aware)."""
    if k == 1:
        return values
    pad = (-len(values)) % k
    grouped = np.concatenate([values, np.full(pad, np.nan)]).reshape(-1, k)
    if how == "sum":
        return np.asarray(np.nansum(grouped, axis=1), dtype=np.float64)
    if how == "first":
        return grouped[:, 0].copy()
    with np.errstate(all="ignore"):
        empty = np.all(np.isnan(grouped), axis=1)
        filled = np.where(np.isnan(grouped), -np.inf, grouped)
        worst = filled.max(axis=1) if how == "max" else np.nanmean(grouped, axis=1)
    return np.asarray(np.where(empty, np.nan, worst), dtype=np.float64)


def _with_gaps(t: Array, v: Array, step_s: float) -> tuple[Array, Array]:
    """Points of a value per window of ``step_s``, drawn as steps: each holds for its window
    (so the last one gets an end), and the line breaks where windows are missing."""
    if not len(t):
        return t, v
    at = np.nonzero(np.diff(t) > 1.5 * step_s)[0] + 1
    t, v = np.insert(t, at, t[at - 1] + step_s), np.insert(v, at, np.nan)
    return np.append(t, t[-1] + step_s), np.append(v, v[-1])


def _ratio_pct(part: Array, whole: Array) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(whole > 0, 100.0 * part / whole, np.nan), dtype=np.float64)


def _load_panels(
    load: Doc, span: tuple[float, float] | None, aggregated: dict[str, float]
) -> tuple[Panel, Panel]:
    col = {name: i for i, name in enumerate(load["timeline_columns"])}
    assert col["t_s"] == 0, "the load's timeline starts with its time column"
    rows = _within(load["timeline"], span)
    k = _factor(len(rows))
    t = _reduce(_array([r[col["t_s"]] for r in rows]), k, "first")
    ok = _reduce(_array([r[col["ok"]] for r in rows]), k, "sum")
    failed = _reduce(_array([r[col["failed"]] for r in rows]), k, "sum")
    p50 = _reduce(_array([r[col["p50_ms"]] for r in rows]), k, "mean")
    p99 = _reduce(_array([r[col["p99_ms"]] for r in rows]), k, "max")
    worst = _reduce(_array([r[col["max_ms"]] for r in rows]), k, "max")
    if k > 1:
        aggregated["latency"] = aggregated["errors"] = float(k)
    step = float(k)

    def line(gid: str, label: str, v: Array, color: str, width: float = 1.1) -> Series:
        tt, vv = _with_gaps(t, np.where(v > 0, v, np.nan), step)
        return Series(gid, label, tt, vv, color, width)

    latency = Panel(
        "latency",
        "Latency of the load, per second of intended send",
        "ms (log)",
        (
            line("series-max", "max", worst, "#c7c7c7", 0.8),
            line("series-p99", "p99", p99, "#d62728", 1.2),
            line("series-p50", "p50", p50, "#1f77b4", 1.2),
        ),
        "log",
    )
    te, rate = _with_gaps(t, _ratio_pct(failed, ok + failed), step)
    errors = Panel(
        "errors",
        "Error rate of the load, per second",
        "% failed",
        (Series("series-error-rate", "failed requests", te, rate, FAULT_COLOR, 1.2),),
        "percent-failed",
    )
    return latency, errors


def _probe_arrays(rows: list[list[float]], k: int) -> tuple[Array, Array, Array, Array]:
    t = _reduce(_array([r[0] for r in rows]), k, "first")
    probes = _reduce(_array([r[1] for r in rows]), k, "sum")
    failed = _reduce(_array([r[2] for r in rows]), k, "sum")
    worst = _reduce(_array([r[3] for r in rows]), k, "max")
    return t, probes, failed, worst


def _probe_panels(
    doc: Doc, span: tuple[float, float] | None, aggregated: dict[str, float]
) -> tuple[Panel | None, Panel | None, Panel]:
    """Availability per target; and, for a run without load, its latency and error rate
    from the frontend's probes."""
    pt = doc["probe_timeline"]
    window_s = float(pt["window_s"])
    targets = {name: _within(rows, span) for name, rows in pt["targets"].items()}
    k = _factor(max((len(rows) for rows in targets.values()), default=0))
    step = window_s * k
    if k > 1:
        aggregated["availability"] = step
    ordered = sorted(targets, key=lambda name: (name != "frontend", name))
    availability = []
    latency = errors = None
    for i, name in enumerate(ordered):
        t, probes, failed, worst = _probe_arrays(targets[name], k)
        frontend = name == "frontend"  # what clients see: drawn over the nodes
        color = "#000000" if frontend else NODE_COLORS[i % len(NODE_COLORS)]
        ta, va = _with_gaps(t, _ratio_pct(probes - failed, probes), step)
        availability.append(
            Series(
                f"series-availability-{slug(name)}",
                _label(name),
                ta,
                va,
                color,
                1.4 if frontend else 1.1,
                4.0 if frontend else 3.0,
            )
        )
        if frontend and doc["load"] is None:
            if k > 1:
                aggregated["latency"] = aggregated["errors"] = step
            tl, vl = _with_gaps(t, np.where(worst > 0, worst, np.nan), step)
            latency = Panel(
                "latency",
                f"Latency of the frontend probes, slowest per {step:g} s window (no load)",
                "ms (log)",
                (Series("series-probe-max", "slowest probe", tl, vl, "#d62728", 1.2),),
                "log",
            )
            te, ve = _with_gaps(t, _ratio_pct(failed, probes), step)
            errors = Panel(
                "errors",
                f"Error rate of the frontend probes, per {step:g} s window (no load)",
                "% failed",
                (Series("series-error-rate", "failed probes", te, ve, FAULT_COLOR, 1.2),),
                "percent-failed",
            )
    panel = Panel(
        "availability",
        f"Probe availability: answered in time, per {step:g} s window",
        "% answered",
        tuple(availability),
        "percent-answered",
    )
    return latency, errors, panel


def _head_lag_panel(
    doc: Doc, span: tuple[float, float] | None, aggregated: dict[str, float]
) -> Panel:
    lag = doc["head_lag"]
    named = [
        (name, _within(node["timeline"], span), False)
        for name, node in sorted(lag["nodes"].items())
    ]
    named.append(("frontend", _within(lag["frontend"]["timeline"], span), True))
    k = _factor(max((len(points) for _, points, _ in named), default=0))
    series = []
    for i, (name, points, frontend) in enumerate(named):
        if not points:
            continue
        t = _reduce(_array([p[0] for p in points]), k, "first")
        v = _reduce(_array([p[1] for p in points]), k, "max")
        step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
        tt, vv = _with_gaps(t, v, step)
        series.append(
            Series(
                "series-head-lag-frontend" if frontend else f"series-head-lag-{slug(name)}",
                "through the frontend" if frontend else _label(name),
                tt,
                vv,
                "#000000" if frontend else NODE_COLORS[i % len(NODE_COLORS)],
                1.3 if frontend else 1.1,
            )
        )
    if k > 1:
        aggregated["head-lag"] = float(k)
    return Panel(
        "head-lag",
        "Head lag: blocks behind the best node",
        "blocks",
        tuple(series),
        "blocks",
    )


def _fmt_s(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _episode_marks(doc: Doc) -> tuple[list[Window], list[Marker]]:
    windows: list[Window] = []
    markers: list[Marker] = []
    several = len(doc["episodes"]) > 1
    for e in doc["episodes"]:
        n = e["index"] + 1
        fault, rec = e["fault"], e["recovery"]
        t0 = fault["effective_s"]
        end = fault["reverted_s"] if fault["reverted_s"] is not None else e["end_s"]
        windows.append(Window("fault-window", n, t0, max(end, t0)))
        tag = f"E{n} " if several else ""
        what = f"{fault['kind']} {', '.join(fault['targets'])}"
        markers.append(Marker("fault", n, t0, _label(f"{tag}{what}")))
        if rec["ttd_s"] is not None:
            markers.append(Marker("ttd", n, t0 + rec["ttd_s"], f"{tag}TTD {_fmt_s(rec['ttd_s'])}"))
        if rec["outage_s"] and rec["outage_start_s"] is not None:
            start = t0 + rec["outage_start_s"]
            windows.append(Window("outage", n, start, start + rec["outage_s"]))
            markers.append(
                Marker("outage-start", n, start, f"{tag}outage {_fmt_s(rec['outage_s'])}")
            )
            markers.append(
                Marker(
                    "service-back",
                    n,
                    t0 + rec["mttr_service_s"],
                    f"{tag}service back {_fmt_s(rec['mttr_service_s'])}",
                )
            )
        if rec["mttr_component_s"] is not None:
            markers.append(
                Marker(
                    "component-back",
                    n,
                    t0 + rec["mttr_component_s"],
                    f"{tag}component back {_fmt_s(rec['mttr_component_s'])}",
                )
            )
        for a in alert_rows(e.get("measured") or {}):
            if a.fired_s is not None:
                label = f"{tag}{a.name} fired {_fmt_s(a.fired_s)}"
                markers.append(Marker("alert-fired", n, t0 + a.fired_s, label, a.name))
            if a.resolved_s is not None:
                label = f"{tag}{a.name} resolved {_fmt_s(a.resolved_s)}"
                markers.append(Marker("alert-resolved", n, t0 + a.resolved_s, label, a.name))
    return windows, markers


def timelines(doc: Doc, span: tuple[float, float] | None = None) -> Timelines:
    """The figure's panels, shaded windows and marked moments, read from ``doc``: the
    whole run, or the part of it in ``span`` (seconds), aggregated only as that part needs."""
    aggregated: dict[str, float] = {}
    latency, errors, availability = _probe_panels(doc, span, aggregated)
    if doc["load"] is not None:
        latency, errors = _load_panels(doc["load"], span, aggregated)
    panels = tuple(
        p for p in (latency, errors, availability, _head_lag_panel(doc, span, aggregated)) if p
    )
    windows, markers = _episode_marks(doc)
    starts = [float(s.t_s[0]) for p in panels for s in p.series if len(s.t_s)]
    ends = [float(s.t_s[-1]) for p in panels for s in p.series if len(s.t_s)]
    ends += [e["end_s"] for e in doc["episodes"]] + [m.t_s for m in markers]
    low = min([0.0, *starts])
    extent = span or (low, max([low + 1.0, *ends]))
    zooms: dict[int, tuple[float, float]] = {}
    if span is None:
        for e in doc["episodes"]:
            around = _zoom_span(e, extent)
            if around is not None:
                zooms[e["index"] + 1] = around
        # On the whole run, an episode with a zoom is only its shaded windows and its name:
        # its moments, seconds apart on an axis of an hour, would draw one smudge.
        markers = [
            replace(m, label=m.label + " (zoom below)") if m.episode in zooms else m
            for m in markers
            if m.episode not in zooms or m.kind == "fault"
        ]
    return Timelines(panels, tuple(windows), tuple(markers), extent, aggregated, zooms)


def _zoom_span(e: Doc, extent_s: tuple[float, float]) -> tuple[float, float] | None:
    """The part of the run around an episode's fault and recovery; None when that is most
    of the run already (a zoom would show the same)."""
    fault, rec = e["fault"], e["recovery"]
    t0 = fault["effective_s"]
    last = max(
        fault["reverted_s"] or t0,
        t0 + rec["mttr_service_s"],
        t0 + (rec["ttd_s"] or 0.0),
        t0 + (rec["mttr_component_s"] or 0.0),
        # Its alerts, delivered later than the recovery by their for: and the pipeline.
        *(t0 + t for a in alert_rows(e.get("measured") or {}) for t in a.times_s),
    )
    pad = max(2.0, 0.3 * (last - fault["requested_s"]))
    span = max(extent_s[0], fault["requested_s"] - pad), min(extent_s[1], last + pad)
    if (span[1] - span[0]) * ZOOM_WORTH > extent_s[1] - extent_s[0]:
        return None
    return span


def _visible(s: Series, span: tuple[float, float]) -> tuple[Array, Array]:
    lo = max(0, int(np.searchsorted(s.t_s, span[0])) - 1)
    hi = int(np.searchsorted(s.t_s, span[1])) + 1
    return s.t_s[lo:hi], s.values[lo:hi]


def _scale_y(ax: Any, panel: Panel, bottom: float, top: float) -> None:
    if panel.scale == "log":
        ax.set_yscale("log")
        # Plain numbers (0.5, 1, 2, 5, 10 ms...): mathtext is off, so no 10^n labels; 2 and
        # 5 between the decades only where few decades are shown.
        decades = math.log10(top / bottom) if 0 < bottom < top < math.inf else 0.0
        subs = (1.0,) if decades > 2.5 else (1.0, 2.0, 5.0)
        ax.yaxis.set_major_locator(LogLocator(subs=subs))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    elif panel.scale == "percent-failed":
        # Small error rates stay visible: the axis ends just above the worst second.
        ax.set_ylim(0, min(105.0, max(1.0, top * 1.15)))
    elif panel.scale == "percent-answered":
        ax.set_ylim(max(0.0, min(95.0, bottom - 5.0)) if math.isfinite(bottom) else 0.0, 102.0)
    elif panel.scale == "blocks":
        ax.set_ylim(-0.3, max(2.0, top + 1.0))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _lane_rows(
    markers: Sequence[Marker], span: tuple[float, float], axes_width_pt: float
) -> list[int | None]:
    """A row of the lane for each marker's label such that none overlaps; None: no room."""
    ends = [-math.inf] * LANE_ROWS
    rows: list[int | None] = []
    char_frac = 8 * 0.58 / axes_width_pt  # an 8 pt character's width, in axes fractions
    for m in markers:
        frac = (m.t_s - span[0]) / (span[1] - span[0])
        row = next((r for r in range(LANE_ROWS) if ends[r] < frac), None)
        if row is not None:
            ends[row] = frac + (len(m.label) + 1.5) * char_frac
        rows.append(row)
    return rows


_COUNTED_ID = re.compile(r' id="[A-Za-z][A-Za-z0-9.]*_\d+"')
MARK_STYLE = {
    "fault": (FAULT_COLOR, "-"),
    "ttd": (TTD_COLOR, "--"),
    "outage-start": (OUTAGE_COLOR, ":"),
    "service-back": (OUTAGE_COLOR, "-."),
    "component-back": (BACK_COLOR, "-."),
    "alert-fired": (ALERT_COLOR, (0, (1, 1))),
    "alert-resolved": (RESOLVED_COLOR, (0, (1, 1))),
}


def _alert_id(m: Marker) -> str:
    """An alert's marks are one per alert of the episode: its name keeps their ids apart."""
    return f"-{slug(m.alert)}" if m.alert else ""


def _draw_lane(
    ax: Any, t: Timelines, span: tuple[float, float], width_pt: float, prefix: str
) -> None:
    ax.set_ylim(0, LANE_ROWS)
    ax.set_yticks([])
    ax.grid(False)
    ax.spines["left"].set_visible(False)
    ax.tick_params(axis="x", labelbottom=False, length=0)
    ax.set_title("Episodes: fault, outage, detection, recovery, alerts")
    shown = [m for m in t.markers if span[0] <= m.t_s <= span[1]]
    shown.sort(key=lambda m: m.t_s)
    for m, row in zip(shown, _lane_rows(shown, span, width_pt), strict=True):
        if row is None:
            continue  # no free row: its line and the legend still say it
        text = ax.text(
            m.t_s,
            LANE_ROWS - row - 0.5,
            " " + m.label,
            va="center",
            ha="left",
            fontsize=8,
            color=MARK_STYLE[m.kind][0],
            clip_on=False,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.3, "alpha": 0.85},
        )
        text.set_gid(f"{prefix}label-{m.kind}-{m.episode}{_alert_id(m)}")
    handles = [
        Patch(color=FAULT_COLOR, alpha=0.25, label="fault in effect"),
        Patch(color=OUTAGE_COLOR, alpha=0.18, label="client-visible outage"),
        Line2D([], [], color=TTD_COLOR, ls="--", label="TTD (HAProxy: DOWN)"),
        Line2D([], [], color=OUTAGE_COLOR, ls="-.", label="service back"),
        Line2D([], [], color=BACK_COLOR, ls="-.", label="component back"),
    ]
    if any(m.kind.startswith("alert-") for m in t.markers):
        handles += [
            Line2D([], [], color=ALERT_COLOR, ls=(0, (1, 1)), label="alert fired (webhook)"),
            Line2D([], [], color=RESOLVED_COLOR, ls=(0, (1, 1)), label="alert resolved"),
        ]
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.25),
        fontsize=7,
        frameon=False,
        borderaxespad=0,
    )


def _draw_marks(ax: Any, t: Timelines, span: tuple[float, float], where: str, prefix: str) -> None:
    least = MIN_WINDOW_FRACTION * (span[1] - span[0])
    for w in t.windows:
        if w.end_s < span[0] or w.start_s > span[1]:
            continue
        end = max(w.end_s, w.start_s + least)
        color, alpha = (FAULT_COLOR, 0.25) if w.kind == "fault-window" else (OUTAGE_COLOR, 0.18)
        patch = ax.axvspan(w.start_s, end, color=color, alpha=alpha, lw=0, zorder=0)
        patch.set_gid(f"{prefix}{w.kind}-{w.episode}-{where}")
    for m in t.markers:
        if m.kind == "fault" or not span[0] <= m.t_s <= span[1]:
            continue  # the fault is its shaded window
        color, style = MARK_STYLE[m.kind]
        line = ax.axvline(m.t_s, color=color, ls=style, lw=1.0, zorder=1)
        line.set_gid(f"{prefix}marker-{m.kind}-{m.episode}{_alert_id(m)}-{where}")


def _draw_panel(ax: Any, panel: Panel, span: tuple[float, float], prefix: str, note: str) -> None:
    top, bottom = -math.inf, math.inf
    drawn = 0
    for s in panel.series:
        tt, vv = _visible(s, span)
        if np.all(np.isnan(vv)):
            continue
        (line,) = ax.plot(
            tt,
            vv,
            color=s.color,
            lw=s.width,
            label=s.label,
            drawstyle="steps-post",
            zorder=s.zorder,
        )
        line.set_gid(prefix + s.gid)
        top = max(top, float(np.nanmax(vv)))
        bottom = min(bottom, float(np.nanmin(vv)))
        drawn += 1
    ax.set_title(panel.title + note)
    ax.set_ylabel(panel.ylabel)
    if not drawn:
        ax.text(0.5, 0.5, "no data in this span", transform=ax.transAxes, ha="center", color="#777")
    _scale_y(ax, panel, bottom, top)
    if drawn:
        ax.legend(
            loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False, borderaxespad=0
        )


def figure_svg(t: Timelines, id_prefix: str = "") -> str:
    """The stacked panels over the timelines' span as an ``<svg>`` element; ``id_prefix``
    keeps ids unique when one page holds several figures."""
    span = t.extent_s
    lane_in, panel_in = 0.75, 1.95
    height_in = lane_in + panel_in * len(t.panels) + 0.55 * len(t.panels) + 0.6
    left, right = 0.07, 0.83
    # A salt per figure: ids matplotlib makes (clip paths) differ between figures of a page.
    rc: Any = {**RC, "svg.hashsalt": f"harness-report-{id_prefix or 'run'}"}
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=(WIDTH_IN, height_in))
        axes = fig.subplots(
            len(t.panels) + 1,
            1,
            sharex=True,
            gridspec_kw={"height_ratios": [lane_in] + [panel_in] * len(t.panels)},
        )
        fig.subplots_adjust(
            left=left, right=right, top=1 - 0.35 / height_in, bottom=0.5 / height_in, hspace=0.55
        )
        _draw_lane(axes[0], t, span, WIDTH_IN * 72 * (right - left), id_prefix)
        _draw_marks(axes[0], t, span, "lane", id_prefix)
        for ax, panel in zip(axes[1:], t.panels, strict=True):
            every = t.aggregated_s.get(panel.key)
            note = f" (aggregated per {every:g} s)" if every else ""
            _draw_panel(ax, panel, span, id_prefix, note)
            _draw_marks(ax, t, span, panel.key, id_prefix)
        axes[-1].set_xlim(*span)
        axes[-1].set_xlabel("seconds from the run's origin (the start of the first episode)")
        out = io.StringIO()
        # No date, no creator: the same document draws the same bytes.
        none = {"Date": None, "Creator": None, "Format": None, "Type": None}
        fig.savefig(out, format="svg", metadata=none)
    text = out.getvalue()
    text = text[text.index("<svg") :]  # inline in HTML: no XML prolog, no DOCTYPE
    # matplotlib numbers its groups (line2d_1, axes_1...) afresh in every figure, and
    # nothing refers to those ids: drop them, or two figures on one page repeat them.
    return _COUNTED_ID.sub("", text)
