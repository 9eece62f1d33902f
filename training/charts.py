"""Plotly figures for classification and regression results, from the chart data of
training.ml.metrics (charts.json; a regression's says {"task": "regression"}), and a forecasting
run's backtest windows (its result's "backtest")."""

import plotly.graph_objects as go

from studio.charts import figure_data

from .ml.tasks import REGRESSION


def confusion_matrix(chart: dict, *, normalized: bool = False) -> dict:
    cm = chart["confusion_matrix"]
    values = cm["normalized"] if normalized else cm["counts"]
    labels = [str(label) for label in cm["labels"]]
    text = [[f"{v:.2f}" if normalized else f"{v:,}" for v in row] for row in values]
    fig = go.Figure(
        go.Heatmap(z=values, x=labels, y=labels, text=text, texttemplate="%{text}", colorscale="Blues", showscale=False)
    )
    fig.update_layout(xaxis_title="predicted", yaxis_title="actual", yaxis_autorange="reversed")
    return figure_data(fig)


def roc(chart: dict) -> dict:
    fig = go.Figure()
    for label, curve in chart["roc"]["per_class"].items():
        fig.add_trace(
            go.Scatter(x=curve["fpr"], y=curve["tpr"], mode="lines", name=f"{label} (AUC {curve['auc']:.3f})")
        )
    for average in ("micro", "macro"):
        curve = chart["roc"].get(average)
        if curve:
            fig.add_trace(
                go.Scatter(
                    x=curve["fpr"],
                    y=curve["tpr"],
                    mode="lines",
                    line={"dash": "dot"},
                    name=f"{average} average (AUC {curve['auc']:.3f})",
                )
            )
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "#aaa"}, showlegend=False)
    )
    fig.update_layout(xaxis_title="false positive rate", yaxis_title="true positive rate")
    return figure_data(fig)


def precision_recall(chart: dict) -> dict:
    fig = go.Figure()
    for label, curve in chart["precision_recall"]["per_class"].items():
        fig.add_trace(
            go.Scatter(
                x=curve["recall"],
                y=curve["precision"],
                mode="lines",
                name=f"{label} (AP {curve['average_precision']:.3f})",
            )
        )
    micro = chart["precision_recall"].get("micro")
    if micro:
        fig.add_trace(
            go.Scatter(
                x=micro["recall"],
                y=micro["precision"],
                mode="lines",
                line={"dash": "dot"},
                name=f"micro average (AP {micro['average_precision']:.3f})",
            )
        )
    fig.update_layout(xaxis_title="recall", yaxis_title="precision")
    return figure_data(fig)


def calibration(chart: dict) -> dict:
    fig = go.Figure(
        [
            go.Scatter(x=c["mean_predicted"], y=c["fraction_positive"], mode="lines+markers", name=str(label))
            for label, c in chart["calibration"].items()
        ]
    )
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "#aaa"}, name="perfectly calibrated"
        )
    )
    fig.update_layout(xaxis_title="mean predicted probability", yaxis_title="fraction positive")
    return figure_data(fig)


def lift(chart: dict) -> dict:
    fig = go.Figure(
        [
            go.Scatter(x=c["population_fraction"], y=c["lift"], mode="lines", name=str(label))
            for label, c in chart["gains"].items()
        ]
    )
    fig.update_layout(xaxis_title="fraction of population (by score)", yaxis_title="lift")
    return figure_data(fig)


def cumulative_gains(chart: dict) -> dict:
    fig = go.Figure(
        [
            go.Scatter(x=c["population_fraction"], y=c["cumulative_gain"], mode="lines", name=str(label))
            for label, c in chart["gains"].items()
        ]
    )
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "#aaa"}, name="random"))
    fig.update_layout(xaxis_title="fraction of population (by score)", yaxis_title="fraction of positives found")
    return figure_data(fig)


def classification_figures(chart: dict, *, full: bool = False) -> list[tuple[str, str, dict]]:
    """(id, title, figure) for a results page: the confusion matrix and ROC, or every chart."""
    figures = [
        ("confusion", "Confusion matrix", confusion_matrix(chart)),
        ("roc", "ROC curve", roc(chart)),
    ]
    if full:
        figures += [
            ("confusion-normalized", "Confusion matrix (normalised)", confusion_matrix(chart, normalized=True)),
            ("pr", "Precision–recall", precision_recall(chart)),
            ("calibration", "Calibration", calibration(chart)),
            ("lift", "Lift", lift(chart)),
            ("gains", "Cumulative gains", cumulative_gains(chart)),
        ]
    return figures


def predicted_vs_actual(chart: dict) -> dict:
    points = chart["predicted_vs_actual"]
    actual, predicted = points["actual"], points["predicted"]
    fig = go.Figure(go.Scatter(x=actual, y=predicted, mode="markers", marker={"size": 5, "opacity": 0.6}, name="rows"))
    values = [v for v in actual + predicted if v is not None]
    if values:  # the line a perfect model's points would sit on
        low, high = min(values), max(values)
        fig.add_trace(
            go.Scatter(x=[low, high], y=[low, high], mode="lines", line={"dash": "dash", "color": "#aaa"}, name="y = x")
        )
    fig.update_layout(xaxis_title="actual", yaxis_title="predicted")
    return figure_data(fig)


def residual_histogram(chart: dict) -> dict:
    histogram = chart["residual_histogram"]
    edges, counts = histogram["edges"], histogram["counts"]
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=False)]
    widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=False)]
    fig = go.Figure(go.Bar(x=centres, y=counts, width=widths, marker_color="#3451d1"))
    fig.update_layout(xaxis_title="residual (actual − predicted)", yaxis_title="rows", bargap=0.02)
    return figure_data(fig)


def residuals_vs_predicted(chart: dict) -> dict:
    points = chart["residuals_vs_predicted"]
    fig = go.Figure(
        go.Scatter(x=points["predicted"], y=points["residual"], mode="markers", marker={"size": 5, "opacity": 0.6})
    )
    fig.add_hline(y=0, line={"dash": "dash", "color": "#aaa"})
    fig.update_layout(xaxis_title="predicted", yaxis_title="residual (actual − predicted)", showlegend=False)
    return figure_data(fig)


def regression_figures(chart: dict) -> list[tuple[str, str, dict]]:
    """(id, title, figure) for a regression's results page."""
    return [
        ("predicted-vs-actual", "Predicted vs actual", predicted_vs_actual(chart)),
        ("residual-histogram", "Residuals", residual_histogram(chart)),
        ("residuals-vs-predicted", "Residuals vs predicted", residuals_vs_predicted(chart)),
    ]


def result_figures(chart: dict, *, full: bool = False) -> list[tuple[str, str, dict]]:
    """The figures of a result's charts.json, by its task: a regression's never go through the
    classification charts (they have no confusion matrix), nor the other way round."""
    if chart.get("task") == REGRESSION:
        return regression_figures(chart)
    return classification_figures(chart, full=full)


def series_label(key: dict) -> str:
    """A series' name from its key ({"Store ID": "A-1"} -> "Store ID = A-1"); "all" for a single series."""
    return ", ".join(f"{column} = {value}" for column, value in key.items()) or "all"


def forecast_chart(window_series: list[dict], *, level: float | None = None, target: str = "value") -> dict:
    """Forecast vs actual of one backtest window, with the prediction interval as a band: one
    series shown at a time, a picker (a dropdown in the figure) when there are several."""
    fig = go.Figure()
    band = f"{level:.0%} interval" if level else "interval"
    per_series = 4  # lower bound, upper bound (filled down to the lower), actual, forecast
    for index, series in enumerate(window_series):
        visible = index == 0
        times = series["time"]
        fig.add_trace(
            go.Scatter(x=times, y=series["lower"], mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip")
        )
        fig.add_trace(
            go.Scatter(
                x=times,
                y=series["upper"],
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(52, 81, 209, 0.18)",
                name=band,
            )
        )
        fig.add_trace(
            go.Scatter(x=times, y=series["actual"], mode="lines+markers", name="actual", line={"color": "#222"})
        )
        fig.add_trace(
            go.Scatter(x=times, y=series["forecast"], mode="lines+markers", name="forecast", line={"color": "#3451d1"})
        )
        for trace in fig.data[-per_series:]:
            trace.visible = visible
    if len(window_series) > 1:
        buttons = []
        for index, series in enumerate(window_series):
            shown = [i // per_series == index for i in range(per_series * len(window_series))]
            buttons.append(
                {"label": series_label(series.get("key") or {}), "method": "restyle", "args": [{"visible": shown}]}
            )
        fig.update_layout(
            updatemenus=[
                {"buttons": buttons, "direction": "down", "x": 0, "xanchor": "left", "y": 1.18, "yanchor": "top"}
            ]
        )
    fig.update_layout(yaxis_title=target)  # no x title: the dates say it, and it would sit on the legend
    return figure_data(fig)


def _moment(iso) -> str:
    """An ISO time as a page shows it: the date alone at midnight ("2024-03-16"), else "2024-03-16 14:00"."""
    text = str(iso or "")[:19]
    return text.removesuffix("T00:00:00").replace("T", " ")


def forecast_figures(
    windows: list[dict], *, level: float | None = None, target: str = "value"
) -> list[tuple[str, str, dict]]:
    """(id, title, figure) per backtest window, oldest origin first; the y axis is the `target` column."""
    return [
        (
            f"backtest-{index}",
            f"Backtest window {index} (origin {_moment(window.get('origin'))})",
            forecast_chart(window["series"], level=level, target=target),
        )
        for index, window in enumerate(windows, start=1)
        if window.get("series")
    ]


# One colour per compared run, the same on every chart (a run missing a metric shifts nothing).
RUN_COLOURS = [
    "#4c6ef5",
    "#f76707",
    "#2f9e44",
    "#e03131",
    "#7048e8",
    "#1098ad",
    "#d6336c",
    "#5c940d",
    "#868e96",
    "#f59f00",
]


def metric_history_chart(*, name: str, histories: dict, labels: dict, colours: dict, x: str = "step") -> dict:
    """The histories of one metric for several runs overlaid; `histories` is {run id: (steps,
    times, values)}, x is "step" or "time"."""
    fig = go.Figure(
        [
            go.Scatter(
                x=times if x == "time" else steps,
                y=values,
                mode="lines+markers" if len(values) < 30 else "lines",
                name=labels[run_id],
                line={"color": RUN_COLOURS[colours[run_id] % len(RUN_COLOURS)]},
            )
            for run_id, (steps, times, values) in histories.items()
        ]
    )
    fig.update_layout(xaxis_title="time" if x == "time" else "step", yaxis_title=name, showlegend=True)
    return figure_data(fig)
