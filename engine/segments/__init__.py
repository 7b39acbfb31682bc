"""Segments: YAML definitions of who gets what, compiled to SQL over contacts and events."""

from engine.segments.fields import FieldSpec, field_specs
from engine.segments.loading import SEGMENTS_DIR, SegmentSet, read_segments, references
from engine.segments.model import (
    AllOf,
    AnyOf,
    Condition,
    Count,
    EnrollmentCondition,
    EventCondition,
    FieldCondition,
    FieldType,
    Moment,
    Not,
    Op,
    Segment,
    SegmentRef,
)

__all__ = [
    # the language
    "AllOf",
    "AnyOf",
    "Condition",
    "Count",
    "EnrollmentCondition",
    "EventCondition",
    "FieldCondition",
    "FieldType",
    "Moment",
    "Not",
    "Op",
    "Segment",
    "SegmentRef",
    # fields
    "FieldSpec",
    "field_specs",
    # loading
    "SEGMENTS_DIR",
    "SegmentSet",
    "read_segments",
    "references",
]
