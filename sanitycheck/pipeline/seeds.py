"""Seeds and budgets: every probe derives its own seed from the config's, and scales its work by the profile."""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import torch

from sanitycheck.engine.config import PROFILES

if TYPE_CHECKING:
    from sanitycheck.engine.config import Config


class SeedsAndBudgets:
    """The part of :class:`~sanitycheck.pipeline.context.PipelineContext` that makes runs reproducible and sized.

    Needs ``self.config``.
    """

    config: Config

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def scale(self) -> float:
        """The profile's budget factor (fast 0.25, default 1, thorough 4)."""
        return PROFILES[self.config.profile]

    def budget(self, default: float, minimum: int = 1) -> int:
        """A check's default budget (steps, samples) scaled by the profile."""
        return max(minimum, int(round(default * self.scale)))

    def derived_seed(self, tag: str) -> int:
        """A seed for one probe: the config's seed combined with a stable tag, so probes do not share streams."""
        return (self.seed * 1_000_003 + zlib.crc32(tag.encode())) % 2**31

    def seed_everything(self, tag: str) -> int:
        s = self.derived_seed(tag)
        torch.manual_seed(s)
        np.random.seed(s)
        random.seed(s)
        return s

    def rng(self, tag: str) -> np.random.Generator:
        return np.random.default_rng(self.derived_seed(tag))


class RandomStreams:
    """The global random streams a user's code may draw from, as they are now: torch's (CPU and CUDA), NumPy's
    and ``random``'s. :meth:`restore` puts them back, so that a step run again draws what it drew the first time
    (a mixup step's ``np.random.beta``, a transform's ``random.random()``, dropout's masks)."""

    def __init__(self) -> None:
        self.states = torch.get_rng_state(), np.random.get_state(), random.getstate()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() \
            else None

    def restore(self) -> None:
        torch.set_rng_state(self.states[0])
        np.random.set_state(self.states[1])
        random.setstate(self.states[2])
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


@contextmanager
def same_random_streams() -> Iterator[None]:
    """Restore the global random streams (:class:`RandomStreams`) after the block."""
    streams = RandomStreams()
    try:
        yield
    finally:
        streams.restore()

