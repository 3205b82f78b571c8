"""x.t().reshape(batch, -1) inside the model: features move across samples of the batch."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402
import probekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits()
train = casekit.dataset(_xt, _yt)
val = casekit.dataset(_xv, _yv)
make_model = probekit.mixing_mlp  # BUG
