"""Tracking: signed tokens and links now; event normalisation and webhooks arrive with [5/8]."""

from engine.tracking.links import MessageLinks, TrackingLinks
from engine.tracking.tokens import TokenPurpose, TokenSigner, click_payload, split_click_payload

__all__ = [
    "MessageLinks",
    "TokenPurpose",
    "TokenSigner",
    "TrackingLinks",
    "click_payload",
    "split_click_payload",
]
