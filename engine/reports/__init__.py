"""Reports over the stored pipeline, sequences and events."""

from engine.reports.ab_test import VariantComparison, sends_per_variant, two_proportion_p
from engine.reports.daily import DailyCount
from engine.reports.deliverability import Deliverability
from engine.reports.filters import ReportFilter, ReportFilterError
from engine.reports.funnel import Exit, Funnel, FunnelStage
from engine.reports.pipeline import PipelineReport, pipeline_report
from engine.reports.report import Report, build_report
from engine.reports.sequences import StepStats
from engine.reports.stage_times import OwnerGap, StageTime, TimeInStage

__all__ = [
    # the full report
    "Report",
    "ReportFilter",
    "ReportFilterError",
    "build_report",
    # its sections
    "DailyCount",
    "Deliverability",
    "Exit",
    "Funnel",
    "FunnelStage",
    "OwnerGap",
    "StageTime",
    "StepStats",
    "TimeInStage",
    "VariantComparison",
    # statistics
    "sends_per_variant",
    "two_proportion_p",
    # the pipeline now
    "PipelineReport",
    "pipeline_report",
]
