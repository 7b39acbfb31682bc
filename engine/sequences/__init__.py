"""Sequences: the files in ``config/sequences/`` (their full model arrives with [4/8])."""

from engine.sequences.names import SEQUENCES_DIR, sequence_names

__all__ = ["SEQUENCES_DIR", "sequence_names"]
