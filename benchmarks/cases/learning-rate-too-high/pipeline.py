"""Adam at lr=0.1 (100x the usual 1e-3) on a small CNN: the loss jumps to several times ln 10 in the first
steps and oscillates, without NaN."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits(image=True)
train, val = casekit.dataset(_xt, _yt), casekit.dataset(_xv, _yv)
make_model = casekit.cnn
