"""Server-side SVG charts for the analytics pages (pygal), readable with JavaScript off.

Each chart is drawn by pygal and inlined in the page as SVG. Two things pygal adds are taken out
by an ``xml_filters`` hook so that the pages hold under a Content-Security-Policy without
'unsafe-inline': the ``<script>`` with the chart's config (only pygal's hover script, which we do
not load, reads it) and the per-chart ``<style>``. The same styles are served once, from
:func:`stylesheet`, scoped to the ``insights-chart`` class. Every chart also carries its figures
as rows for an HTML table (the page shows them in a ``<details>``) and a one-sentence summary
for screen readers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pygal
from markupsafe import Markup
from pygal.style import Style

CHART_CLASS = "insights-chart"
Formatter = Callable[[float], str]

# Colour-blind-safe (Okabe-Ito), each at least 3:1 against white; the same order on every chart.
STYLE = Style(
    font_family='system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
    background="transparent",
    plot_background="transparent",
    foreground="#1f2933",
    foreground_strong="#1f2933",
    foreground_subtle="#52606d",
    guide_stroke_color="#cbd2d9",
    major_guide_stroke_color="#9aa5b1",
    colors=("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#8a6d00", "#56B4E9"),
    opacity=".9",
    opacity_hover=".9",
    label_font_size=14,
    major_label_font_size=14,
    legend_font_size=14,
    value_font_size=14,
    value_label_font_size=14,
    no_data_font_size=18,
    stroke_width="3",
)
BASE_CONFIG: dict[str, Any] = {
    "style": STYLE, "js": [], "disable_xml_declaration": True,
    "legend_at_bottom": True, "legend_box_size": 14, "margin": 8, "spacing": 12,
    "truncate_legend": -1, "truncate_label": 16, "classes": ["pygal-chart", CHART_CLASS],
}
# Each chart is drawn twice: for a page column (shown from 641 px) and for a phone, where the
# smaller canvas keeps the 14 px labels readable instead of scaling them down (insights.css).
WIDE, NARROW = 500, 340
SMALL_MAX = 10  # up to this many, a count axis gets a label per whole number (no 0.5 clicks)
Builder = Callable[[int], Any]  # canvas width -> a pygal chart with its data


def count(value: float) -> str:
    """Format a count for a chart label."""
    return f"{value:,.0f}"


def rate(number: int, previous: int | None) -> str:
    """Format the share of ``previous`` that ``number`` is, as a percentage."""
    if previous is None:
        return "–"
    if not previous:
        return "n/a"
    return f"{100 * number / previous:.1f}%"


@dataclass(frozen=True)
class Series:
    """One named line or set of bars."""

    name: str
    values: Sequence[float | int | None]


@dataclass(frozen=True)
class Chart:
    """A chart ready for a template: the SVG (wide and narrow), a summary sentence and the
    figures as table rows."""

    key: str
    title: str
    svg: Markup
    svg_narrow: Markup
    summary: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Tell whether there is nothing to draw (the page says so instead of an empty plot)."""
        return not self.rows


def funnel(key: str, title: str, steps: Sequence[tuple[str, int]]) -> Chart:
    """Draw the steps of a funnel as bars; the table adds each step's conversion from the last."""
    numbers = [number for _, number in steps]

    def build(width: int) -> Any:
        chart = pygal.Bar(**BASE_CONFIG, width=width, height=300, show_legend=False,
                          print_values=True, value_formatter=count, **_whole_numbers(numbers),
                          x_label_rotation=0 if width >= WIDE else 25)
        chart.x_labels = [label for label, _ in steps]
        chart.add(title, numbers)
        return chart

    rows, previous = [], None
    for label, number in steps:
        rows.append([label, count(number), rate(number, previous)])
        previous = number
    summary = f"{title}: " + ", ".join(f"{label} {count(number)}" for label, number in steps) + "."
    return _chart(key, title, build, summary, ["Step", "Count", "Conversion from the step before"],
                  rows if any(numbers) else [])


def over_time(key: str, title: str, labels: Sequence[str], series: Sequence[Series],
              formatter: Formatter = count, bars: bool = False) -> Chart:
    """Draw series over time on one axis: lines, or grouped bars."""
    kind = pygal.Bar if bars else pygal.Line
    numbers = [v for s in series for v in s.values]

    def build(width: int) -> Any:
        few = len(labels) <= (6 if width >= WIDE else 4)
        chart = kind(**BASE_CONFIG, width=width, height=300, x_label_rotation=0 if few else 35,
                     x_labels_major_count=8 if width >= WIDE else 5, show_minor_x_labels=few,
                     value_formatter=formatter, dots_size=3, show_dots=len(labels) <= 45,
                     legend_at_bottom_columns=len(series),
                     **(_whole_numbers(numbers) if formatter is count else {}))
        chart.x_labels = list(labels)
        for one in series:
            chart.add(one.name, list(one.values))
        return chart

    rows = [[label, *(formatter(s.values[i] or 0) for s in series)] for i, label in enumerate(labels)]
    totals = ", ".join(f"{s.name} {formatter(sum(v or 0 for v in s.values))}" for s in series)
    summary = f"{title}, {len(labels)} periods; totals: {totals}."
    return _chart(key, title, build, summary, ["Period", *(s.name for s in series)],
                  rows if any(numbers) else [])


def by_category(key: str, title: str, labels: Sequence[str], series: Sequence[Series],
                formatter: Formatter = count, heading: str = "Category") -> Chart:
    """Draw grouped horizontal bars, one group per category (channel, reason...)."""
    numbers = [v for s in series for v in s.values]

    def build(width: int) -> Any:
        height = 60 + (30 if len(series) > 1 else 0) + max(2, len(labels)) * (12 + 18 * len(series))
        chart = pygal.HorizontalBar(**BASE_CONFIG, width=width, height=height,
                                    value_formatter=formatter, show_legend=len(series) > 1,
                                    legend_at_bottom_columns=len(series),
                                    **(_whole_numbers(numbers) if formatter is count else {}))
        chart.x_labels = list(reversed(labels))  # pygal draws the first category at the bottom
        for one in series:
            chart.add(one.name, list(reversed(one.values)))
        return chart

    rows = [[label, *(formatter(s.values[i] or 0) for s in series)] for i, label in enumerate(labels)]
    summary = f"{title}: " + "; ".join(
        f"{label}: " + ", ".join(f"{s.name} {formatter(s.values[i] or 0)}" for s in series)
        for i, label in enumerate(labels)) + "."
    return _chart(key, title, build, summary, [heading, *(s.name for s in series)], rows)


def _whole_numbers(values: Sequence[float | int | None]) -> dict[str, Any]:
    """Label a count axis at each whole number when the counts are small (pygal would use tenths)."""
    top = max((v or 0 for v in values), default=0)
    return {"y_labels": list(range(0, int(top) + 1))} if 0 < top <= SMALL_MAX else {}


@cache
def stylesheet() -> str:
    """Return the CSS every chart needs, scoped to ``.insights-chart`` (pygal's own rules)."""
    captured: list[str] = []

    def capture(root: Any) -> Any:
        captured.extend(child.text or "" for child in root.iter() if _local(child.tag) == "style")
        return root

    sample = pygal.Line(**BASE_CONFIG, width=WIDE, height=300)
    for index in range(len(STYLE.colors)):
        sample.add(str(index), [index])
    sample.add_xml_filter(capture)
    sample.render()
    prefix = f"#chart-{sample.uuid}"
    css = "\n".join(captured).replace(f"{prefix} ", f".{CHART_CLASS} ").replace(prefix, f".{CHART_CLASS}")
    return f"/* pygal {pygal.__version__}'s chart styles, scoped (referflow/dashboard/charts.py) */\n{css}\n"


def _chart(key: str, title: str, build: Builder, summary: str, columns: list[str],
           rows: list[list[str]]) -> Chart:
    return Chart(key, title, _render(build(WIDE), key, "wide", title, summary),
                 _render(build(NARROW), f"{key}-narrow", "narrow", title, summary),
                 summary, columns, rows)


def _render(chart: Any, key: str, variant: str, title: str, summary: str) -> Markup:
    chart.add_xml_filter(_strict_csp(key, variant, title, summary))
    # pygal escapes every text it writes (labels, titles, values): the SVG is safe markup.
    return Markup(chart.render(is_unicode=True))  # noqa: S704


def _strict_csp(key: str, variant: str, title: str, summary: str) -> Callable[[Any], Any]:
    """Return a pygal xml filter: no script, style or comment, a stable id, an accessible name."""

    def clean(root: Any) -> Any:
        for parent in list(root.iter()):
            for child in list(parent):
                if callable(child.tag) or _local(child.tag) in ("script", "style") or (
                        "tooltip" in child.get("class", "").split()):
                    parent.remove(child)
            parent.attrib.pop("style", None)
        root.set("id", f"chart-{key}")
        root.set("class", f"{root.get('class', '')} {CHART_CLASS}-{variant}".strip())
        root.set("role", "img")
        root.set("aria-labelledby", f"chart-{key}-title")
        root.set("aria-describedby", f"chart-{key}-desc")
        root.set("focusable", "false")
        heading = next((child for child in root if _local(child.tag) == "title"), None)
        if heading is None:
            heading = root.makeelement("title", {})
            root.insert(0, heading)
        heading.set("id", f"chart-{key}-title")
        heading.text = title
        desc = root.makeelement("desc", {"id": f"chart-{key}-desc"})
        desc.text = summary
        root.insert(list(root).index(heading) + 1, desc)
        return root

    return clean


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""

