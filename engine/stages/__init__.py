"""Stages: the pipeline of ``config/stages.yaml`` and the history of every change."""

from engine.stages.history import StageChange, record_stage_changes
from engine.stages.pipeline import (
    STAGES_FILE,
    Pipeline,
    Stage,
    TransitionSpec,
    load_pipeline,
    read_pipeline,
)

__all__ = [
    "STAGES_FILE",
    "StageChange",
    "Pipeline",
    "Stage",
    "TransitionSpec",
    "load_pipeline",
    "read_pipeline",
    "record_stage_changes",
]
