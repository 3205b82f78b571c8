"""Dropout directly before BatchNorm1d in an MLP (variance shift)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import advicekit  # noqa: E402
import casekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits()
train, val = casekit.dataset(_xt, _yt), casekit.dataset(_xv, _yv)
make_model = advicekit.dropout_before_batchnorm_mlp
