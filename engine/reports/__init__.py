"""Reports over the stored pipeline."""

from engine.reports.pipeline import PipelineReport, pipeline_report

__all__ = ["PipelineReport", "pipeline_report"]
