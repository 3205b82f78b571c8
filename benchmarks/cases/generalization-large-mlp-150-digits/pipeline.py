"""A 300k-parameter MLP on 150 training digits, no dropout, no weight decay, no augmentation: it overfits."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import advicekit  # noqa: E402
import casekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = advicekit.digits_subset(150)
train, val = casekit.dataset(_xt, _yt), casekit.dataset(_xv, _yv)
make_model = advicekit.large_mlp
