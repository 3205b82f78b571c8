"""The HTML report draws every curve a check puts in its evidence (label-shuffle's included), on real findings."""

from __future__ import annotations

import re

import casekit
import probekit
from sanitycheck.faces.report import html


def curve_like(key: str, value) -> bool:
    """Independent of the renderer: a per-step series (or a mapping of them) under a key that names a curve or losses."""
    if not re.search(r"curve|loss", key) or key.endswith(("_loss", "_losses_done")):
        return False
    series = lambda v: isinstance(v, list) and len(v) >= 2 and all(  # noqa: E731
        x is None or isinstance(x, (int, float)) for x in v)
    return series(value) or (isinstance(value, dict) and bool(value) and all(series(v) for v in value.values()))


def test_every_curve_in_the_evidence_is_drawn(run_pipeline):
    spec = probekit.clean("mlp")
    x, y = spec["train"].tensors
    reports = [
        probekit.run_clean(run_pipeline, ["label-shuffle"], "mlp", profile="fast",
                           train=casekit.dataset(x, probekit.permuted(y))),
        probekit.run_clean(run_pipeline, ["overfit-batch", "gradients"], "mlp",
                           train_step=probekit.step_without_optimizer_step),
        probekit.run_clean(run_pipeline, ["overfit-batch"], "mlp", loss="torch.nn:NLLLoss"),
    ]
    checked = set()
    for report in reports:
        page = html.render(report)
        articles = re.findall(r'<article class="finding.*?</article>', page, flags=re.S)
        assert len(articles) == len(report.findings)
        for finding, article in zip(report.findings, articles):
            curves = [k for k, v in finding.evidence.items() if curve_like(k, v)]
            if not curves:
                continue
            assert 'class="chart curve"' in article and "<polyline" in article, (finding.code, curves)
            table = article.split("<summary>Evidence</summary>")[-1] if "<summary>Evidence" in article else ""
            for key in curves:  # drawn, not printed as a number array
                assert f"<td>{key}</td>" not in table, (finding.code, key)
            checked.update(f"{finding.code}:{k}" for k in curves)
    assert {"SC201:loss_curve_real", "SC201:loss_curve_shuffled", "SC304:curve", "SC1007:losses",
            "SC305:curve"} <= checked, checked
