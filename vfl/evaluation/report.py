"""One self-contained HTML report: metrics, tables and figures embedded as data: URIs.

The file can be mailed or archived with the job's artifacts and still open anywhere (no
network, no side files). Numbers are rounded for reading (metrics.json keeps full precision).
A few lines of script count the figures that decoded, so a broken image is called out to a
reader and checkable by a headless browser.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; }
table.run td { text-align: left; }
figure { display: inline-block; margin: 0.5em; }
figure img { width: 600px; border: 1px solid #ddd; }
#image-status.bad { color: #b00; font-weight: bold; }
"""

# Counts the figures that decoded (data-images-loaded/total let a test check); says so only
# when one failed.
_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", String(ok));
  document.body.setAttribute("data-images-total", String(imgs.length));
  if (ok < imgs.length) {
    var status = document.getElementById("image-status");
    status.textContent = (imgs.length - ok) + " of " + imgs.length + " figures failed to load";
    status.className = "bad";
  }
});
"""


def rounded(value: float) -> str:
    """A number for reading: thousands grouped, else at most 4 decimals (0.5 stays 0.5)."""
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _format(value: Any) -> str:
    if isinstance(value, float):
        return rounded(value)
    if value is None:
        return "n/a"
    if isinstance(value, list | tuple) and all(isinstance(v, float | int) for v in value):
        return "[" + ", ".join(_format(v) for v in value) + "]"
    return str(value)


def _metrics_table(metrics: Mapping[str, Any], css_class: str = "") -> str:
    rows = []
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            value = ", ".join(f"{k}={_format(v)}" for k, v in value.items())
        elif isinstance(value, list | tuple):
            value = _format(value) if len(str(value)) < 200 else f"[{len(value)} values]"
        rows.append(
            f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(_format(value))}</td></tr>"
        )
    opening = f"<table class='{css_class}'>" if css_class else "<table>"
    return opening + "".join(rows) + "</table>"


def _frame(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=rounded, border=0, na_rep="n/a")


def _figure(caption: str, png: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    cap = html.escape(caption)
    return f'<figure><img src="data:image/png;base64,{data}" alt="{cap}"><figcaption>{cap}</figcaption></figure>'


def write_report(
    path: Path,
    title: str,
    metrics: Mapping[str, Any],
    figures: Sequence[tuple[str, Path]] = (),
    tables: Mapping[str, pd.DataFrame] | None = None,
    notes: Sequence[str] = (),
    run: Mapping[str, Any] | None = None,
    summary_tables: Mapping[str, pd.DataFrame] | None = None,
) -> Path:
    """Write the HTML report to `path`: the run's metadata (`run`), the metrics, the
    `summary_tables`, the figures (PNG files, embedded), then the other `tables`."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by vfl.evaluation. "
        "<span id='image-status'></span></p>",
        *(f"<p>{html.escape(n)}</p>" for n in notes),
    ]
    if run:
        parts += ["<h2 id='run'>Run</h2>", _metrics_table(run, "run")]
    parts += ["<h2 id='metrics'>Metrics</h2>", _metrics_table(metrics)]
    for name, frame in (summary_tables or {}).items():
        parts += [f"<h2>{html.escape(name)}</h2>", _frame(frame)]
    if figures:
        parts.append("<h2>Figures</h2>")
        parts.extend(_figure(caption, png) for caption, png in figures)
    for name, frame in (tables or {}).items():
        parts += [f"<h2>{html.escape(name)}</h2>", _frame(frame)]
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
