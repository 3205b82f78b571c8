"""A CNN with BatchNorm trained from a DataLoader with batch_size=2."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import advicekit  # noqa: E402
import casekit  # noqa: E402

from torch.utils.data import DataLoader  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits(image=True)
train = DataLoader(casekit.dataset(_xt, _yt), batch_size=2, shuffle=True, drop_last=True)  # BUG: 2 per batch
val = casekit.dataset(_xv, _yv)
make_model = advicekit.regularized_cnn
