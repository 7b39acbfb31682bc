"""A/B/n variants of a send step: which variant a contact gets, the same one every time.

The choice hashes the contact, the sequence and the step, so a retry, a restarted
worker or another host picks the same variant, and contacts spread over the variants
in proportion to their weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def choose_variant(weights: Mapping[str, int], contact_id: int, sequence: str, step: str) -> str:
    """The variant for one contact at one step; ``weights`` maps variant to a weight >= 1."""
    if not weights or any(w < 1 for w in weights.values()):
        raise ValueError("variants need weights of at least 1")
    key = f"{sequence}\x00{step}\x00{contact_id}".encode()
    point = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")
    position = point % sum(weights.values())
    for name in sorted(weights):  # sorted: the YAML's order must not change assignments
        position -= weights[name]
        if position < 0:
            return name
    raise AssertionError("unreachable: position is below the total weight")
