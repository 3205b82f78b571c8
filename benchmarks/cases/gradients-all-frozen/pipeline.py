"""Every parameter frozen (requires_grad=False), meant for the backbone only."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402
import probekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits()
train = casekit.dataset(_xt, _yt)
val = casekit.dataset(_xv, _yv)
make_model = probekit.frozen_mlp  # BUG
