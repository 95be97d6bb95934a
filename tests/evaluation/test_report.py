"""The HTML report: self-contained, and it really renders its figures in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageStat

from tests.support.servers import missing
from vfl.evaluation import evaluate_scores, write_report

FIGURES = 7  # roc, ks, lift, gain, score distribution, calibration, psi


def chromium() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if found is None:
        missing("chromium not installed (Debian package 'chromium')", "install Debian's chromium package")
    return found


def run_chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with no network chatter, a throw-away profile and a hard timeout."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
        *args, page.resolve().as_uri(),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def loaded_images(tmp_path: Path, page: Path) -> tuple[int, int]:
    """(images decoded, images on the page) as the report's own script counted them after load."""
    dom = run_chromium(tmp_path, page, "--dump-dom").stdout
    body = re.search(r'<body data-images-loaded="(\d+)" data-images-total="(\d+)"', dom)
    assert body, f"the report's image check did not run: {dom[:500]}"
    return int(body.group(1)), int(body.group(2))


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    y = (rng.random(3000) < 0.3).astype(int)
    s = 1 / (1 + np.exp(-(rng.normal(size=3000) + 1.5 * y)))
    ref = 1 / (1 + np.exp(-rng.normal(loc=0.3, size=2000)))
    out = tmp_path_factory.mktemp("report")
    evaluate_scores(y, s, out, reference_scores=ref, title="Test <report> & co")
    return out


def test_report_is_self_contained(report_dir):
    html = (report_dir / "report.html").read_text()
    images = re.findall(r'<img src="([^"]*)"', html)
    assert len(images) == FIGURES
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(?!data:)', html)  # nothing fetched from elsewhere
    assert "<title>Test &lt;report&gt; &amp; co</title>" in html  # text is escaped
    for name in ("roc", "ks", "lift", "gain", "score_distribution", "calibration", "psi"):
        png = report_dir / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    shot = tmp_path / "shot.png"
    run_chromium(
        tmp_path, report_dir / "report.html", f"--screenshot={shot}", "--window-size=1200,3000"
    )
    assert shot.exists() and shot.stat().st_size > 10_000
    image = Image.open(shot).convert("L")
    assert image.size == (1200, 3000)
    assert ImageStat.Stat(image).stddev[0] > 20, "screenshot is blank"
    # the figures sit below the metrics table: that part of the page must not be blank either
    figures_area = image.crop((0, 1000, 1200, 3000))
    assert ImageStat.Stat(figures_area).stddev[0] > 20
    assert loaded_images(tmp_path, report_dir / "report.html") == (FIGURES, FIGURES)


def test_chromium_check_notices_a_broken_image(report_dir, tmp_path):
    html = (report_dir / "report.html").read_text()
    broken = re.sub(r"base64,[A-Za-z0-9+/=]{100}", "base64,AAAABBBBCCCC", html, count=1)
    assert broken != html
    page = tmp_path / "broken.html"
    page.write_text(broken)
    assert loaded_images(tmp_path, page) == (FIGURES - 1, FIGURES)


def test_write_report_without_figures(tmp_path):
    path = write_report(tmp_path / "r" / "plain.html", "Plain", {"auc": 0.5, "note": None})
    text = path.read_text()
    assert "<th>auc</th><td>0.5</td>" in text and "<th>note</th><td>n/a</td>" in text
    assert "<img" not in text


def test_the_report_says_nothing_about_figures_unless_one_failed(report_dir, tmp_path):
    def status(page: Path) -> str:
        dom = run_chromium(tmp_path, page, "--dump-dom").stdout
        found = re.search(r'<span id="image-status"[^>]*>([^<]*)</span>', dom)
        assert found, dom[:500]
        return found.group(1)

    assert status(report_dir / "report.html") == ""
    html = (report_dir / "report.html").read_text()
    page = tmp_path / "broken.html"
    page.write_text(re.sub(r"base64,[A-Za-z0-9+/=]{100}", "base64,AAAABBBBCCCC", html, count=1))
    assert status(page) == f"1 of {FIGURES} figures failed to load"


def test_the_ks_legend_does_not_cover_the_curves():
    from vfl.evaluation import roc_curve
    from vfl.evaluation.plots import ks_figure

    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.4).astype(int)
    fig = ks_figure(roc_curve(y, rng.normal(size=500) + y))
    fig.canvas.draw()
    [ax] = fig.axes
    legend, plot_area = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.y1 < plot_area.y0  # entirely below the plotting area
    assert fig.bbox.contains(legend.x0, legend.y0) and fig.bbox.contains(legend.x1, legend.y1)  # not cut off
