"""A one-file HTML report of a run, to show it to someone who has no playground.

    html = html_report(Run("runs/tiny"))     # final metrics, loss curves, samples, config; plotly.js inlined

The page is self-contained (plotly.js is inlined, about 4.5 MB) so it opens offline, e.g. attached to an email.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import PurePath
from typing import Any

from genai_core.runs.folder import Run, downsample_rows
from genai_core.units import format_seconds

REPORT_MAX_SAMPLES = 60
"""Samples shown in a report, spread over training (a long run can log hundreds)."""

_STYLE = ("body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1000px;margin:2em auto;"
          "padding:0 1em;\ncolor:#222}\n"
          "h1{margin-bottom:.2em} .note{color:#666;font-size:.9em}\n"
          "table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}\n"
          "th,td{text-align:left;vertical-align:top;padding:.3em .6em;border-bottom:1px solid #e3e3e3}\n"
          "th{width:32%;font-weight:600} th.sec{background:#f3f5f8;text-transform:uppercase;font-size:.85em}\n"
          "pre{white-space:pre-wrap;margin:0;font-family:ui-monospace,Menlo,Consolas,monospace}")


def html_report(run: Run) -> str:
    """A self-contained HTML page about one run: final metrics, config, loss curves, samples."""
    config = run.config()
    rows = run.metrics()
    val = downsample_rows([r for r in rows if r.get("val_loss") is not None])
    samples_note, samples_html = _samples_table(run.samples())
    config_html = _config_table(_shareable(config.model_dump(mode="json")))
    e = html.escape
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Run report: {e(run.name)}</title>
<style>
{_STYLE}
</style></head><body>
<h1>Run report: {e(run.name)}</h1>
<p class=note>{e(config.model.arch.upper())} language model · generated {e(when)} by GenAI Playground</p>
<h2>Final metrics</h2><table>{_metrics_table(run, rows, val)}</table>
<h2>Loss curves</h2>{_loss_figure(run.name, rows, val)}
<h2>Samples over training</h2>{samples_note}<table>{samples_html}</table>
<h2>Configuration</h2><table>{config_html}</table>
</body></html>
"""


def _loss_figure(name: str, rows: list[dict[str, Any]], val: list[dict[str, Any]]) -> str:
    """The training and validation loss curves as a plotly figure (a div, with plotly.js inlined)."""
    import plotly.graph_objects as go
    import plotly.io as pio

    fig = go.Figure()
    train = downsample_rows([r for r in rows if r.get("train_loss") is not None])
    fig.add_trace(go.Scatter(x=[r["step"] for r in train], y=[r["train_loss"] for r in train], mode="lines",
                             name="train loss", line={"color": "#3b6ea5", "width": 2}))
    if val:
        fig.add_trace(go.Scatter(x=[r["step"] for r in val], y=[r["val_loss"] for r in val], mode="lines+markers",
                                 name="validation loss", line={"color": "#d1495b", "dash": "dot"}))
    fig.update_layout(title=f"Loss of {name}", xaxis_title="step (optimizer updates)",
                      yaxis_title="cross-entropy loss (nats/token)", height=420,
                      legend={"orientation": "h", "y": -0.2}, template="plotly_white")
    return pio.to_html(fig, include_plotlyjs=True, full_html=False, config={"displaylogo": False})


def _metrics_table(run: Run, rows: list[dict[str, Any]], val: list[dict[str, Any]]) -> str:
    """Rows of the final-metrics table: state, size, length, losses and throughput."""
    summary = run.summary()
    status = run.status()
    final = [
        ("state", f"{summary['state']} — {status.get('message', '')}"),
        ("parameters", _num(summary.get("params"))),
        ("steps", _num(summary.get("step"))),
        ("tokens seen", _num(summary.get("tokens"))),
        ("training time", format_seconds(summary.get("elapsed_s"))),
        ("final train loss (nats/token)", _fmt(summary.get("train_loss"))),
        ("best validation loss (nats/token)", _fmt(summary.get("best_val_loss"))),
        ("best validation perplexity", _fmt(summary.get("best_val_ppl"), 2)),
        ("last validation loss (nats/token)", _fmt(val[-1]["val_loss"] if val else None)),
        ("throughput (tokens/s)", _num(rows[-1].get("tokens_per_s") if rows else None)),
    ]
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in final)


def _shareable(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config with its file paths cut to the file's name: a report is shared, and must not show where the
    server keeps its uploads or runs."""
    data = dict(cfg.get("data") or {})
    for key in ("corpus", "val_corpus"):
        if data.get(key):
            data[key] = PurePath(str(data[key])).name
    return {**cfg, "data": data}


def _config_table(cfg: dict[str, Any]) -> str:
    """Rows of the configuration table: one heading per section, then its settings as JSON."""
    e = html.escape
    return "".join(
        f"<tr><th colspan=2 class=sec>{e(section)}</th></tr>"
        + "".join(f"<tr><th>{e(k)}</th><td>{e(json.dumps(v))}</td></tr>" for k, v in values.items())
        for section, values in cfg.items() if isinstance(values, dict)
    )


def _samples_table(samples: list[dict[str, Any]]) -> tuple[str, str]:
    """A note on how many samples are shown (empty when all are) and the rows of the samples table."""
    e = html.escape
    shown = _spread(samples, REPORT_MAX_SAMPLES)
    rows = "".join(f"<tr><th>step {e(str(s.get('step', '?')))}</th><td><pre>{e(str(s.get('text', '')))}</pre>"
                   "</td></tr>" for s in shown) or "<tr><td>No samples were recorded.</td></tr>"
    note = (f"<p class=note>{len(shown)} of {len(samples)} samples, spread over training.</p>"
            if len(shown) < len(samples) else "")
    return note, rows


def _spread(items: list[Any], limit: int) -> list[Any]:
    """At most `limit` of `items`, evenly spaced, first and last included."""
    if len(items) <= limit:
        return items
    idx = sorted({round(i * (len(items) - 1) / (limit - 1)) for i in range(limit)})
    return [items[i] for i in idx]


def _fmt(v: Any, digits: int = 4) -> str:
    return "—" if v is None else f"{float(v):.{digits}f}"


def _num(v: Any) -> str:
    return "—" if v is None else f"{v:,.0f}" if isinstance(v, (int, float)) else str(v)


__all__ = ["REPORT_MAX_SAMPLES", "html_report"]
