"""The pipeline layer's answer to the engine: open the user's pipeline for a run (a default plugin of every host)."""

from __future__ import annotations

from typing import Any

from sanitycheck.engine.hookspecs import hookimpl


@hookimpl(trylast=True)
def sanitycheck_open_pipeline(config: Any) -> Any:
    """Import the user's code, read each split once and run the preflight (see :class:`PipelineContext`)."""
    from sanitycheck.pipeline.context import PipelineContext  # torch is imported only when a run starts

    return PipelineContext.open(config)
