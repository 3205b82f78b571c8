"""``--format html``: one self-contained page (no network, no script) with pictures where looking beats reading.

- the summary and every finding with its message, fix, flagged samples and evidence;
- curves: every curve a finding's evidence holds, drawn as one inline SVG chart per finding, with
  ``target_loss`` as a dashed line when present. A curve is ``evidence["curve"]`` (one series),
  ``evidence["curves"]`` ({name: series}), or any other key whose name says curve (``loss_curve_real``) or ends
  in ``losses``, holding a series or a {name: series} mapping; a series is a list of at least 2 numbers (``null``
  where a value was not finite). Drawn keys are left out of the evidence table. By default against the step, or
  against ``evidence["curve_x"]`` (one value per point, named by ``curve_x_label``; a log axis when the values
  span over 100x, e.g. learning rates) with ``evidence["markers"]`` ({label: x}) as labelled vertical lines;
- class histograms per split: from the report's ``splits`` (filled by the runner from the data pass, so they
  show even when ``class-balance`` is clean) and from a finding's ``train_counts`` / ``val_counts``;
- thumbnails per the ``evidence["thumbnails"]`` convention of :mod:`sanitycheck.probing.thumbnails`: items sharing a
  ``group`` side by side (duplicate pairs, original vs augmented, given vs suggested label);
- score distributions: a finding's ``evidence["score_histogram"]`` (``edges``, ``counts``, ``overflow``, ``cutoff``,
  ``label``), drawn as bars on a log scale with the cutoff marked, so the samples just past it show.

A Content-Security-Policy forbids every network request and script: the page can be mailed or archived as is.
"""

from __future__ import annotations

import json
import math
import re
from html import escape
from typing import Any

from sanitycheck.engine.models import Finding, Report

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#db2777")
SPLIT_COLORS = {"train": "#2563eb", "val": "#ea580c"}
MAX_BARS = 100  # classes drawn per histogram; more are summarized in the caption
PICTURE_KEYS = ("curve", "curves", "curve_x", "thumbnails", "train_counts", "val_counts", "score_histogram")
#: Evidence keys (besides ``curve`` / ``curves``) whose series are drawn as curves (``curve_x`` is their x axis).
CURVE_KEY = re.compile(r"curve(?!_x)|(^|_)losses$")

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#111827;background:#f9fafb}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:24px} h2{margin:28px 0 10px;font-size:18px} h3{margin:0;font-size:15px}
.meta{color:#6b7280} .cards{display:flex;gap:12px;margin:16px 0;flex-wrap:wrap}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 16px;min-width:110px}
.card b{display:block;font-size:22px}
.verdict{display:inline-block;padding:4px 10px;border-radius:999px;font-weight:600;margin-top:8px}
.v-ok{background:#dcfce7;color:#166534}.v-warn{background:#fef9c3;color:#854d0e}.v-bad{background:#fee2e2;color:#991b1b}
.finding{background:#fff;border:1px solid #e5e7eb;border-left:6px solid #9ca3af;border-radius:8px;padding:14px 16px;margin:12px 0}
.sev-error{border-left-color:#dc2626}.sev-warning{border-left-color:#d97706}.sev-info{border-left-color:#2563eb}
.badge{display:inline-block;font-size:12px;font-weight:600;padding:1px 8px;border-radius:999px;margin-right:6px;color:#fff}
.b-error{background:#dc2626}.b-warning{background:#d97706}.b-info{background:#2563eb}
.fix{background:#f0fdf4;border:1px solid #bbf7d0;border-radius:6px;padding:6px 10px}
.samples{color:#374151;font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}
.pictures{display:flex;flex-wrap:wrap;gap:16px;margin:10px 0}
figure{margin:0} figcaption{font-size:12px;color:#4b5563;text-align:center}
.thumbs{display:flex;flex-wrap:wrap;gap:10px}
.group{display:flex;gap:4px;padding:6px;border:1px solid #e5e7eb;border-radius:6px;background:#f9fafb}
.group img{width:72px;height:72px;image-rendering:pixelated;border:1px solid #d1d5db;background:#000}
.group figcaption{max-width:80px;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;background:#fff} td,th{border:1px solid #e5e7eb;padding:4px 8px;text-align:left;vertical-align:top}
.ev td:first-child{white-space:nowrap;color:#374151} .ev td:last-child{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}
details summary{cursor:pointer;color:#374151}
.s-passed{color:#15803d}.s-failed{color:#b91c1c}.s-skipped{color:#6b7280}.s-error{color:#a21caf;font-weight:600}
svg text{font:11px system-ui,sans-serif;fill:#374151}
"""


def render(report: Report) -> str:
    s = report.summary
    if not report.ok:
        verdict = ('v-bad', "Do not train yet: errors found")
    elif s.warnings:
        verdict = ('v-warn', "Review the warnings")
    else:
        verdict = ('v-ok', "Clean")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>sanitycheck report{' - ' + escape(report.config) if report.config else ''}</title>",
        f"<style>{STYLE}</style></head><body><main>",
        "<header><h1>sanitycheck report</h1>",
        f'<div class="meta">config <code>{escape(report.config or "-")}</code> · sanitycheck '
        f'{escape(report.sanitycheck_version)} · {s.duration_s:.1f} s</div>',
        f'<div class="verdict {verdict[0]}">{verdict[1]}</div>',
        '<div class="cards">',
        *(f'<div class="card"><b>{n}</b>{label}</div>' for n, label in (
            (s.errors, "errors"), (s.warnings, "warnings"), (s.infos, "info"), (len(report.checks), "checks run"))),
        "</div></header>",
    ]
    parts += _data_section(report)
    parts.append(f'<section id="findings"><h2>Findings ({len(report.findings)})</h2>')
    if not report.findings:
        parts.append("<p>No findings.</p>")
    for i, f in enumerate(report.findings):
        parts.append(_finding(f, i))
    parts.append("</section>")
    parts.append('<section id="checks"><h2>Checks</h2><table><tr><th>check</th><th>status</th><th>seconds</th><th>note</th></tr>')
    for c in report.checks:
        parts.append(f'<tr><td>{escape(c.name)}</td><td class="s-{c.status}">{c.status}</td>'
                     f'<td>{c.duration_s:.2f}</td><td>{escape(c.reason or "")}</td></tr>')
    parts.append("</table></section></main></body></html>")
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------------------------ sections


def _data_section(report: Report) -> list[str]:
    """Split sizes and the class histogram per split (from the runner's split summaries)."""
    if not report.splits:
        return []
    sizes = ", ".join(f"{escape(name)}: {s.samples} samples" for name, s in report.splits.items())
    out = [f'<section id="data"><h2>Data</h2><p>{sizes}</p>']
    counts = {name: s.class_counts for name, s in report.splits.items() if s.class_counts}
    if counts:
        out.append(f'<div class="pictures">{histogram(counts, "Samples per class and split")}</div>')
    out.append("</section>")
    return out


def _finding(f: Finding, i: int) -> str:
    out = [f'<article class="finding sev-{f.severity}" id="finding-{i}">',
           f'<h3><span class="badge b-{f.severity}">{f.severity}</span><code>{escape(f.code)}</code> '
           f'{escape(f.title)} <span class="meta">· {escape(f.check)}</span></h3>',
           f"<p>{escape(f.message)}</p>"]
    if f.fix:
        out.append(f'<p class="fix"><b>Fix:</b> {escape(f.fix)}</p>')
    for split, idx in f.samples.items():
        shown = ", ".join(map(str, idx[:60])) + (", ..." if len(idx) > 60 else "")
        out.append(f'<p class="samples">{escape(split)} samples ({len(idx)} listed): {shown}</p>')
    pictures = _pictures(f)
    if pictures:
        out.append(f'<div class="pictures">{"".join(pictures)}</div>')
    drawn = set(curve_series(f.evidence)[1])
    rest = {k: v for k, v in f.evidence.items() if k not in PICTURE_KEYS and k not in drawn}
    if rest:
        rows = "".join(f"<tr><td>{escape(str(k))}</td><td>{escape(_compact(v))}</td></tr>" for k, v in rest.items())
        out.append(f'<details open><summary>Evidence</summary><table class="ev">{rows}</table></details>')
    out.append("</article>")
    return "\n".join(out)


def _pictures(f: Finding) -> list[str]:
    ev = f.evidence
    out = []
    series = curve_series(ev)[0]
    if series:
        target = ev.get("target_loss")
        steps = ev.get("steps")
        xs = ev.get("curve_x")
        xs = xs if isinstance(xs, list) and all(len(v) == len(xs) for v in series.values()) else None
        label = str(ev.get("curve_x_label") or "step") if xs else "step"
        markers = {str(k): float(v) for k, v in ev["markers"].items() if _finite(v)} \
            if xs and isinstance(ev.get("markers"), dict) else None
        out.append(line_chart(series, f"{f.code}: loss per {label}", target if _finite(target) else None,
                              steps if isinstance(steps, int) and steps > 0 else None, xs=xs, x_label=label,
                              markers=markers))
    counts = {split: ev[f"{split}_counts"] for split in ("train", "val") if isinstance(ev.get(f"{split}_counts"), list)}
    if counts:
        out.append(histogram(counts, f"{f.code}: samples per class"))
    if isinstance(ev.get("score_histogram"), dict):
        chart = score_chart(ev["score_histogram"], f"{f.code}: scores and cutoff")
        if chart:
            out.append(chart)
    if isinstance(ev.get("thumbnails"), list):
        grid = thumbnails(ev["thumbnails"])
        if grid:
            out.append(grid)
    return out


def curve_series(evidence: dict[str, Any]) -> tuple[dict[str, list], list[str]]:
    """Every curve in a finding's evidence as named series, and the evidence keys they came from (see the module
    docstring for what counts as a curve)."""
    series: dict[str, list] = {}
    keys: list[str] = []
    for key, value in evidence.items():
        if key not in ("curve", "curves") and not CURVE_KEY.search(key):
            continue
        label = "loss" if key == "curve" else _series_name(key)
        if _curve_like(value):
            series.setdefault(label, value)
            keys.append(key)
        elif isinstance(value, dict) and value and all(_curve_like(v) for v in value.values()):
            for name, values in value.items():
                series.setdefault(str(name) if key == "curves" else f"{label}: {name}", values)
            keys.append(key)
    return series, keys


def _series_name(key: str) -> str:
    name = re.sub(r"^(loss_)?curves?_|_curves?$", "", key)
    return "loss" if name in ("losses", "loss") else name.replace("_", " ")


def _curve_like(value: Any) -> bool:
    return isinstance(value, list) and len(value) >= 2 and all(v is None or _finite(v) for v in value) \
        and sum(_finite(v) for v in value) >= 2


# ------------------------------------------------------------------------------------------------ pictures


def line_chart(series: dict[str, list], title: str, target: float | None = None, last_step: int | None = None,
               width: int = 460, height: int = 220, xs: list | None = None, x_label: str = "step",
               markers: dict[str, float] | None = None) -> str:
    """Loss curves as an inline SVG line chart (a log y axis when the values span over 100x).

    ``last_step`` labels the x axis when a long curve was subsampled (the evidence's ``steps``). With ``xs`` (one
    x value per point) the points are placed at those values instead (a log x axis when they are positive and
    span over 100x), and each of ``markers`` ({label: x}) is drawn as a labelled vertical dashed line.
    """
    values = [float(v) for s in series.values() for v in s if _finite(v)]
    if not values:
        return f"<figure><figcaption>{escape(title)}: no finite values</figcaption></figure>"
    if target is not None and _finite(target):
        values.append(float(target))
    log = min(values) > 0 and max(values) / min(values) > 100
    tf = (lambda v: math.log10(v)) if log else (lambda v: v)
    lo, hi = tf(min(values)), tf(max(values))
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    n = max(len(s) for s in series.values())
    left, right, top, bottom = 52, 10, 22, 30
    pw, ph = width - left - right, height - top - bottom
    known = [float(v) for v in (xs or []) if _finite(v)]
    if xs is not None and len(known) != len(xs):
        xs = None  # a missing x value: fall back to steps rather than guess
    x_log = bool(xs) and min(known) > 0 and max(known) / min(known) > 100
    xf = (lambda v: math.log10(v)) if x_log else (lambda v: v)
    x_lo, x_hi = (xf(min(known)), xf(max(known))) if xs else (0.0, 1.0)
    if x_hi - x_lo < 1e-12:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5

    def at(value: float) -> float:
        return left + pw * (xf(value) - x_lo) / (x_hi - x_lo)

    def x(i: int) -> float:
        return at(float(xs[i])) if xs else left + pw * (i / max(1, n - 1))

    def y(v: float) -> float:
        return top + ph * (1 - (tf(v) - lo) / (hi - lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" class="chart curve">',
             f"<title>{escape(title)}</title>",
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#d1d5db"/>']
    for frac in (0.0, 0.5, 1.0):
        raw = lo + (hi - lo) * frac
        label = 10 ** raw if log else raw
        yy = top + ph * (1 - frac)
        parts.append(f'<text x="{left - 4}" y="{yy + 4:.1f}" text-anchor="end">{_num(label)}</text>')
    if xs:
        parts.append(f'<text x="{left}" y="{height - 8}">{_num(min(known))}</text>')
        parts.append(f'<text x="{left + pw / 2:.1f}" y="{height - 8}" text-anchor="middle">'
                     f'{escape(x_label)}{" (log)" if x_log else ""}</text>')
        parts.append(f'<text x="{left + pw}" y="{height - 8}" text-anchor="end">{_num(max(known))}</text>')
    else:
        parts.append(f'<text x="{left}" y="{height - 8}">step 1</text>')
        parts.append(f'<text x="{left + pw}" y="{height - 8}" text-anchor="end">step {last_step or n}</text>')
    for k, (name, value) in enumerate((markers or {}).items()):
        if not xs or (x_log and value <= 0) or not (min(known) <= value <= max(known)):
            continue  # outside the drawn range: the evidence table still has the number
        mx = at(value)
        color = "#d97706" if name == "configured" else "#6b7280"
        parts.append(f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{top}" y2="{top + ph}" stroke="{color}" '
                     f'stroke-dasharray="3,3"><title>{escape(name)} {_num(value)}</title></line>')
        right_side = mx > left + 0.7 * pw  # labels near the right edge grow leftwards
        parts.append(f'<text x="{mx - 3 if right_side else mx + 3:.1f}" y="{top + 36 + 12 * k}" '
                     f'text-anchor="{"end" if right_side else "start"}" style="fill:{color}">'
                     f'{escape(name)} {_num(value)}</text>')
    if target is not None and _finite(target) and (not log or target > 0):
        ty = y(float(target))
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#16a34a" stroke-dasharray="5,4"/>')
        parts.append(f'<text x="{left + pw - 2}" y="{ty - 3:.1f}" text-anchor="end" style="fill:#16a34a">target</text>')
    for k, (name, values_) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        for run in _runs(values_):  # NaN/Inf break the line instead of corrupting it
            points = " ".join(f"{x(i):.1f},{y(float(v)):.1f}" for i, v in run)
            if len(run) == 1:
                i, v = run[0]
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(float(v)):.1f}" r="2" fill="{color}"/>')
            else:
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{points}"/>')
        if len(series) > 1 or name != "loss":
            lx = left + 8 + 120 * (k % 3)
            ly = top + 14 + 14 * (k // 3)
            parts.append(f'<rect x="{lx}" y="{ly - 8}" width="10" height="3" fill="{color}"/>'
                         f'<text x="{lx + 14}" y="{ly - 4}">{escape(name)}</text>')
    parts.append("</svg>")
    return f'<figure>{"".join(parts)}<figcaption>{escape(title)}{" (log scale)" if log else ""}</figcaption></figure>'


def histogram(counts: dict[str, list], title: str, width: int = 460, height: int = 220) -> str:
    """Class histograms per split as grouped bars of each split's share (the counts are in each bar's tooltip)."""
    classes = max(len(c) for c in counts.values())
    shown = min(classes, MAX_BARS)
    shares = {split: [(int(c[k]) if k < len(c) else 0) / max(1, sum(map(int, c))) for k in range(shown)]
              for split, c in counts.items()}
    top_share = max((v for s in shares.values() for v in s), default=0) or 1.0
    left, right, top, bottom = 40, 10, 22, 30
    pw, ph = width - left - right, height - top - bottom
    slot = pw / shown
    bar = slot * 0.8 / len(counts)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" class="chart histogram">',
             f"<title>{escape(title)}</title>",
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#d1d5db"/>',
             f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{top_share:.0%}</text>',
             f'<text x="{left - 4}" y="{top + ph + 4}" text-anchor="end">0</text>']
    for j, (split, values) in enumerate(shares.items()):
        color = SPLIT_COLORS.get(split, COLORS[j % len(COLORS)])
        for k, share in enumerate(values):
            h = ph * share / top_share
            bx = left + slot * k + slot * 0.1 + bar * j
            n = int(counts[split][k]) if k < len(counts[split]) else 0
            parts.append(f'<rect x="{bx:.1f}" y="{top + ph - h:.1f}" width="{max(bar, 0.5):.1f}" height="{h:.1f}" '
                         f'fill="{color}"><title>{escape(split)} class {k}: {n} ({share:.1%})</title></rect>')
        lx = left + pw - 70 * (len(shares) - j)
        parts.append(f'<rect x="{lx}" y="6" width="10" height="10" fill="{color}"/><text x="{lx + 14}" y="15">{escape(split)}</text>')
    step = max(1, shown // 10)
    for k in range(0, shown, step):
        parts.append(f'<text x="{left + slot * (k + 0.5):.1f}" y="{top + ph + 14}" text-anchor="middle">{k}</text>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{height - 2}" text-anchor="middle">class</text>')
    parts.append("</svg>")
    note = f" (first {MAX_BARS} of {classes} classes)" if classes > MAX_BARS else ""
    return f'<figure>{"".join(parts)}<figcaption>{escape(title)}{note}</figcaption></figure>'


def score_chart(hist: dict, title: str, width: int = 460, height: int = 220) -> str:
    """A score histogram (``edges``, ``counts``, optional ``overflow``, ``cutoff``, ``label``) as inline SVG bars on a
    log scale, those at or below the cutoff in red, with the cutoff as a dashed line; "" when malformed."""
    edges, counts = hist.get("edges"), hist.get("counts")
    if not (isinstance(edges, list) and isinstance(counts, list) and len(edges) == len(counts) + 1 and counts
            and all(_finite(e) for e in edges) and all(_finite(c) for c in counts)):
        return ""
    cutoff = hist.get("cutoff")
    lo, hi = float(edges[0]), float(edges[-1])
    if hi <= lo:
        return ""
    top = math.log10(1 + max(max(counts), 1))
    left, right, top_pad, bottom = 44, 10, 22, 30
    pw, ph = width - left - right, height - top_pad - bottom

    def x(v: float) -> float:
        return left + pw * (v - lo) / (hi - lo)

    def h(c: float) -> float:
        return ph * math.log10(1 + c) / top

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" class="chart scores">',
             f"<title>{escape(title)}</title>",
             f'<rect x="{left}" y="{top_pad}" width="{pw}" height="{ph}" fill="#fff" stroke="#d1d5db"/>',
             f'<text x="{left - 4}" y="{top_pad + 4}" text-anchor="end">{max(counts)}</text>',
             f'<text x="{left - 4}" y="{top_pad + ph + 4}" text-anchor="end">0</text>']
    for k, c in enumerate(counts):
        if c <= 0:
            continue
        a, b = float(edges[k]), float(edges[k + 1])
        flagged = _finite(cutoff) and b <= float(cutoff) + 1e-9
        color = "#dc2626" if flagged else "#2563eb"
        parts.append(f'<rect x="{x(a):.1f}" y="{top_pad + ph - h(c):.1f}" width="{max(x(b) - x(a) - 0.5, 0.5):.1f}" '
                     f'height="{h(c):.1f}" fill="{color}"><title>{_num(a)}-{_num(b)}: {int(c)}</title></rect>')
    if _finite(cutoff) and lo <= float(cutoff) <= hi:
        cx = x(float(cutoff))
        parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{top_pad}" y2="{top_pad + ph}" stroke="#dc2626" '
                     f'stroke-dasharray="5,4"/><text x="{cx + 3:.1f}" y="{top_pad + 12}" style="fill:#dc2626">cutoff</text>')
    for v in (lo, (lo + hi) / 2, hi):
        parts.append(f'<text x="{x(v):.1f}" y="{top_pad + ph + 14}" text-anchor="middle">{_num(v)}</text>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{height - 2}" text-anchor="middle">score / cutoff (log count)</text>')
    parts.append("</svg>")
    caption = str(hist.get("label") or title)
    overflow = hist.get("overflow")
    if isinstance(overflow, int) and overflow:
        caption += f"; {overflow} more above {_num(hi)}"
    return f'<figure>{"".join(parts)}<figcaption>{escape(caption)}</figcaption></figure>'


def thumbnails(items: list[Any]) -> str:
    """Thumbnails grouped per ``group`` (drawn side by side); entries that are not PNG data URIs are left out."""
    groups: dict[Any, list[dict]] = {}
    for k, item in enumerate(items):
        if not isinstance(item, dict) or not str(item.get("png", "")).startswith("data:image/png;base64,"):
            continue
        groups.setdefault(item.get("group", f"single-{k}"), []).append(item)
    if not groups:
        return ""
    out = ['<div class="thumbs">']
    for members in groups.values():
        out.append('<div class="group">')
        for item in members:
            label = f"{item.get('split', '?')} #{item.get('index', '?')}"
            caption = escape(label + (f" · {item['caption']}" if item.get("caption") else ""))
            out.append(f'<figure><img src="{escape(item["png"], quote=True)}" alt="{caption}">'
                       f"<figcaption>{caption}</figcaption></figure>")
        out.append("</div>")
    out.append("</div>")
    return "".join(out)


# ------------------------------------------------------------------------------------------------ helpers


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _runs(values: list) -> list[list[tuple[int, Any]]]:
    runs, current = [], []
    for i, v in enumerate(values):
        if _finite(v):
            current.append((i, v))
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def _num(v: float) -> str:
    return f"{v:.3g}"


def _compact(value: Any, limit: int = 600) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + " ..."
