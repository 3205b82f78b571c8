"""Clean: breast cancer (binary), standardized, an MLP with 2 logits. Every check must stay quiet."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.breast_cancer()
train, val = casekit.dataset(_xt, _yt), casekit.dataset(_xv, _yv)


def make_model():
    return casekit.mlp(30, 2)
