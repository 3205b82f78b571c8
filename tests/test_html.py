"""The HTML report in a real headless browser (Debian's `chromium`; .ci/run installs it when missing).

The page must load without console errors or blocked requests, and its pictures must render: every
thumbnail decodes, every SVG chart has drawn marks with a real size, and the screenshot is not blank.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from sample_report import sample_report
from sanitycheck.faces.report import html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; CI installs it)")

# Injected into a copy of the page: records errors, console output and CSP violations, then measures the pictures.
PROBE = """<script>
window.__problems = [];
addEventListener('error', e => __problems.push('error: ' + (e.message || (e.target && e.target.outerHTML || '').slice(0, 80))), true);
addEventListener('securitypolicyviolation', e => __problems.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI));
for (const level of ['error', 'warn']) { const orig = console[level]; console[level] = (...a) => { __problems.push(level + ': ' + a.join(' ')); orig(...a); }; }
addEventListener('load', () => {
  const imgs = [...document.images];
  const charts = [...document.querySelectorAll('svg.chart')];
  const size = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const out = {
    problems: __problems,
    images: imgs.length,
    images_decoded: imgs.filter(i => i.complete && i.naturalWidth > 0 && size(i)).length,
    charts: charts.length,
    charts_drawn: charts.filter(s => size(s) && s.querySelectorAll('polyline, rect, circle').length > 1).length,
    curves: document.querySelectorAll('svg.curve polyline').length,
    bars: document.querySelectorAll('svg.histogram rect[fill]').length,
  };
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"  # a fresh profile per launch
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def png_pixels(path: Path) -> bytes:
    """The decompressed image data of a PNG (filter bytes included): enough to tell a blank page from a drawn one."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return zlib.decompress(idat)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("html")
    path = folder / "report.html"
    path.write_text(html.render(sample_report()))
    return path


def test_pictures_render_without_errors(page, tmp_path):
    text = page.read_text()
    probe_page = tmp_path / "probe.html"
    # The report forbids scripts (CSP); the probe's copy allows inline script and nothing else.
    probe_page.write_text(text.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
                              .replace("<head>", "<head>" + PROBE, 1))
    result = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe_page.as_uri())
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert match, f"no probe output; chromium said: {result.stderr[-2000:]}"
    probe = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert probe["problems"] == []
    expected_images = len(sample_report().findings[2].evidence["thumbnails"])
    assert probe["images"] == probe["images_decoded"] == expected_images
    assert probe["charts"] == probe["charts_drawn"] == 5  # 3 loss-curve charts (one over learning rates), 2 histograms
    assert probe["curves"] >= 5  # one overfit-batch curve, two label-shuffle curves, two LR range test curves
    assert probe["bars"] >= 2 * 3 * 2  # train and val bars for 3 classes, in two histograms


def test_unmodified_page_loads_cleanly_and_draws(page, tmp_path):
    """The report as shipped: no console message at all (errors, CSP violations), and a screenshot that is not blank."""
    shot = tmp_path / "shot.png"
    result = chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--window-size=1100,1800",
                      f"--screenshot={shot}", page.as_uri())
    assert shot.is_file(), result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    assert console == []
    pixels = png_pixels(shot)
    assert len(set(pixels)) > 64  # a blank or error page has a handful of distinct byte values
