"""Charts: figures built with plotly (Python) and drawn by plotly.js from the plotly wheel.

A page renders `{% include "studio/_chart.html" with id="…" figure=figure %}`; studio.js draws
every `[data-chart]` element from the JSON next to it (no inline script: CSP).
"""

import json

import plotly.graph_objects as go
import plotly.io

LAYOUT = {
    "margin": {"l": 50, "r": 20, "t": 30, "b": 40},
    "height": 300,
    "font": {"family": "system-ui, sans-serif", "size": 12},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "legend": {"orientation": "h", "y": -0.2},
}


def figure_data(fig: go.Figure) -> dict:
    """A JSON-safe {data, layout} dict for json_script (numpy arrays become lists)."""
    fig.update_layout(**LAYOUT)
    return json.loads(plotly.io.to_json(fig, validate=False))


def bar_chart(*, x, series: dict[str, list], title: str = "", y_title: str = "", stacked: bool = True) -> dict:
    fig = go.Figure([go.Bar(name=name, x=x, y=values) for name, values in series.items()])
    fig.update_layout(title=title, barmode="stack" if stacked else "group", yaxis_title=y_title)
    return figure_data(fig)


def line_chart(*, series: dict[str, tuple[list, list]], title: str = "", x_title: str = "", y_title: str = "") -> dict:
    fig = go.Figure([go.Scatter(name=name, x=x, y=y, mode="lines+markers") for name, (x, y) in series.items()])
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title)
    return figure_data(fig)
