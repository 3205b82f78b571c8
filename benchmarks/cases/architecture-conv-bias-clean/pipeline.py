"""Clean: a conv with a bias right before BatchNorm is redundant, not wrong (info at most)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import advicekit  # noqa: E402
import casekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits(image=True)
train, val = casekit.dataset(_xt, _yt), casekit.dataset(_xv, _yv)
make_model = casekit.cnn  # Conv2d(bias=True) -> BatchNorm2d
