"""Sequences: the files in ``config/sequences/``, their steps, windows and variants."""

from engine.sequences.enrolling import (
    EnrollmentRules,
    enroll,
    named_contacts,
    stage_entrants,
    trigger_candidates,
)
from engine.sequences.loading import References, SequenceSet, read_sequences
from engine.sequences.model import (
    BranchStep,
    ExitStep,
    NotifyStep,
    OnReply,
    SendStep,
    Sequence,
    SequenceKind,
    StageStep,
    Step,
    Trigger,
    TriggerKind,
    WaitStep,
)
from engine.sequences.names import SEQUENCES_DIR, sequence_names
from engine.sequences.planning import Plan, PlannedAction, PlannedSend, plan_sequence, read_only
from engine.sequences.variants import choose_variant

__all__ = [
    # files
    "SEQUENCES_DIR",
    "References",
    "SequenceSet",
    "read_sequences",
    "sequence_names",
    # the model
    "BranchStep",
    "ExitStep",
    "NotifyStep",
    "OnReply",
    "SendStep",
    "Sequence",
    "SequenceKind",
    "StageStep",
    "Step",
    "Trigger",
    "TriggerKind",
    "WaitStep",
    # enrolling
    "EnrollmentRules",
    "enroll",
    "named_contacts",
    "stage_entrants",
    "trigger_candidates",
    # running
    "choose_variant",
    # planning (a dry run)
    "Plan",
    "PlannedAction",
    "PlannedSend",
    "plan_sequence",
    "read_only",
]
