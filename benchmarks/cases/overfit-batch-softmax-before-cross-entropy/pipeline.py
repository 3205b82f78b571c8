"""A softmax as the model's last layer, fed to CrossEntropyLoss (which applies log_softmax itself)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402
import probekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits()
train = casekit.dataset(_xt, _yt)
val = casekit.dataset(_xv, _yv)
make_model = probekit.softmax_mlp  # BUG
