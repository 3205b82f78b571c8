"""Severity follows the root cause: the specific finding comes first, and generic consequences name it."""

from __future__ import annotations

import torch

import casekit
from sanitycheck.engine.check import CodeDoc
from sanitycheck.engine.models import Finding
from sanitycheck.engine.runner import link_causes


def doc(code: str, explained_by: tuple[str, ...] = ()) -> CodeDoc:
    return CodeDoc(code=code, title=f"title {code}", severity="error", what="-", why="-", example="-", fix="-",
                   explained_by=explained_by)


def finding(code: str, severity: str = "error") -> Finding:
    return Finding(check=f"check-{code}", code=code, severity=severity, title=f"title {code}", message=f"msg {code}.")


def test_consequences_move_after_their_causes_and_name_them():
    docs = {"SC1": (None, doc("SC1", ("SC2",))), "SC2": (None, doc("SC2")), "SC3": (None, doc("SC3", ("SC9",)))}
    linked = link_causes([finding("SC1"), finding("SC3"), finding("SC2", "warning")], docs)
    assert [f.code for f in linked] == ["SC3", "SC2", "SC1"]  # then Report.assemble orders by severity, stably
    consequence = linked[-1]
    assert "SC2 (check-SC2: title SC2)" in consequence.message and consequence.evidence["explained_by"] == ["SC2"]
    assert linked[0].message == "msg SC3."  # its cause (SC9) was not found: unchanged
    info_only = link_causes([finding("SC1"), finding("SC2", "info")], docs)
    assert [f.code for f in info_only] == ["SC1", "SC2"] and "explained_by" not in info_only[0].evidence


def test_a_chain_of_causes_is_ordered_root_first():
    """SC201 explained by SC301, itself explained by SC901: the root first, whatever order the checks ran in."""
    docs = {"SC201": (None, doc("SC201", ("SC301",))), "SC301": (None, doc("SC301", ("SC901",))),
            "SC901": (None, doc("SC901")), "SC7": (None, doc("SC7", ("SC7",)))}
    linked = link_causes([finding("SC201"), finding("SC301"), finding("SC7"), finding("SC901", "warning")], docs)
    assert [f.code for f in linked] == ["SC7", "SC901", "SC301", "SC201"]
    assert linked[2].evidence["explained_by"] == ["SC901"] and linked[3].evidence["explained_by"] == ["SC301"]


def test_sigmoid_before_bce_with_logits_is_the_first_error(run_pipeline):
    (xt, yt), (xv, yv) = casekit.breast_cancer()
    report = run_pipeline(only=["init-loss", "overfit-batch", "label-shuffle"], profile="fast",
                          train=casekit.dataset(xt, yt.float()[:, None]), val=casekit.dataset(xv, yv.float()[:, None]),
                          model=lambda: casekit.mlp(30, 1, last=torch.nn.Sigmoid()), loss="torch.nn:BCEWithLogitsLoss")
    assert report.exit_code() == 1
    first = report.findings[0]
    assert (first.code, first.severity) == ("SC902", "error") and "sigmoid" in first.message
    for consequence in (f for f in report.findings if f.code in ("SC201", "SC204", "SC301")):
        assert "SC902" in consequence.evidence["explained_by"] and "SC902 (init-loss" in consequence.message


def test_validation_features_left_unscaled_are_named_as_the_cause_of_labels_not_learned(run_pipeline):
    """StandardScaler fitted and applied to the training features only: the model is judged on raw validation
    features, so label-shuffle finds "not learned" (SC201) and names data-integrity's SC811 as its cause."""
    from sklearn.datasets import load_breast_cancer

    (xt, yt), (xv, yv) = casekit.breast_cancer()
    raw = load_breast_cancer().data.astype("float32")
    xv_raw = xv * raw.std(0) + raw.mean(0)  # about the features' own scale (areas in the hundreds)
    report = run_pipeline(only=["data-integrity", "label-shuffle"], profile="fast", train=casekit.dataset(xt, yt),
                          val=casekit.dataset(xv_raw, yv), model=lambda: casekit.mlp(30, 2),
                          loss="torch.nn:CrossEntropyLoss")
    cause = next(f for f in report.findings if f.code == "SC811")
    assert cause.severity == "warning" and cause.evidence["std_ratio"] > 10
    consequence = next(f for f in report.findings if f.code == "SC201")
    assert "SC811" in consequence.evidence["explained_by"] and "consequence of SC811" in consequence.message
