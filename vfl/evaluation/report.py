"""One self-contained HTML report: metrics, tables and figures embedded as data: URIs.

The file can be mailed or archived with the job's artifacts and still open anywhere (no
network, no side files). A few lines of script mark how many figures decoded, so a broken
image is visible to a reader and checkable by a headless browser.
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
figure { display: inline-block; margin: 0.5em; }
figure img { width: 600px; border: 1px solid #ddd; }
#image-status.bad { color: #b00; font-weight: bold; }
"""

# Counts the figures that decoded; data-images-loaded/total let a test or a reader check.
_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", String(ok));
  document.body.setAttribute("data-images-total", String(imgs.length));
  var status = document.getElementById("image-status");
  status.textContent = ok + " of " + imgs.length + " figures loaded";
  if (ok < imgs.length) { status.className = "bad"; }
});
"""


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.6g}"
    if value is None:
        return "n/a"
    return str(value)


def _metrics_table(metrics: Mapping[str, Any]) -> str:
    rows = []
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            value = ", ".join(f"{k}={_format(v)}" for k, v in value.items())
        elif isinstance(value, list):
            value = str(value) if len(str(value)) < 200 else f"[{len(value)} values]"
        rows.append(
            f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(_format(value))}</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


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
) -> Path:
    """Write the HTML report to `path`: metrics, then figures (PNG files, embedded), then tables."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by vfl.evaluation. "
        "<span id='image-status'>figures not checked (scripts disabled)</span></p>",
        *(f"<p>{html.escape(n)}</p>" for n in notes),
        "<h2>Metrics</h2>",
        _metrics_table(metrics),
    ]
    if figures:
        parts.append("<h2>Figures</h2>")
        parts.extend(_figure(caption, png) for caption, png in figures)
    for name, frame in (tables or {}).items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(frame.to_html(index=False, float_format=lambda v: f"{v:.6g}", border=0))
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
