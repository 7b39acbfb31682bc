"""Sequences: the files in ``config/sequences/`` (their full model arrives with [4/8])."""

from engine.sequences.enrollments import pause_for_error
from engine.sequences.names import SEQUENCES_DIR, sequence_names
from engine.sequences.variants import choose_variant

__all__ = ["SEQUENCES_DIR", "choose_variant", "pause_for_error", "sequence_names"]
