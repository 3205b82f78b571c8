"""Clean: the regression pipeline of probekit. The training probes must stay quiet."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402
import probekit  # noqa: E402

_spec = probekit.clean('regression')
train, val, make_model = _spec['train'], _spec['val'], _spec['model']
