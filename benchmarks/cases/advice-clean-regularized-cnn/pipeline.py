"""Clean: a well-regularized CNN (dropout after the last BatchNorm, AdamW, a one-pixel shift augmentation)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import advicekit  # noqa: E402
import casekit  # noqa: E402

_spec = advicekit.regularized()
train, val, augment, make_model = _spec['train'], _spec['val'], _spec['augment'], _spec['model']
