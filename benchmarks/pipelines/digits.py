"""The digits example (examples/digits/clean): its YAML config, and an epoch of its own loader and step."""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

from . import ROOT, run_epoch

CONFIG = ROOT / "examples" / "digits" / "clean" / "sanitycheck.yaml"


def _pipeline():
    spec = importlib.util.spec_from_file_location("digits_clean_pipeline", CONFIG.parent / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config():
    return CONFIG


def epoch() -> dict:
    p = _pipeline()
    return run_epoch(p.train(), p.make_model, lambda m: torch.optim.Adam(m.parameters(), lr=1e-3),
                     nn.CrossEntropyLoss(), p.train_step)
