"""The pipeline layer's answer to the engine: open the user's pipeline for a run (a default plugin of every host)."""

from __future__ import annotations

from typing import Any

from sanitycheck.engine.hookspecs import hookimpl


@hookimpl(trylast=True)
def sanitycheck_open_pipeline(config: Any, checks: list[Any]) -> Any:
    """Import the user's code, read each split once and run the preflight (see :class:`PipelineContext`); its
    optimizer and ``train_step`` calls only when one of ``checks`` trains (``Check.trains``)."""
    from sanitycheck.pipeline.context import PipelineContext  # torch is imported only when a run starts

    return PipelineContext.open(config, trains=any(check.trains for check in checks))


@hookimpl(wrapper=True)
def sanitycheck_run_check(check: Any, context: Any, settings: Any) -> Any:
    """Process-wide torch settings a check (or the user's code it calls) changes are put back after it: the default
    dtype and the number of intra-op threads, so that one check cannot change how the next one computes."""
    import torch

    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    try:
        return (yield)
    finally:
        if torch.get_default_dtype() != dtype:
            torch.set_default_dtype(dtype)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
