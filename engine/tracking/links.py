"""The addresses and URLs that bring a message's replies, opens, clicks and opt-outs back."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from engine.tracking.tokens import TokenPurpose, TokenSigner, click_payload


@dataclass(frozen=True)
class TrackingLinks:
    """Builds signed tracking URLs and reply addresses for messages."""

    signer: TokenSigner
    tracking_url: str  # e.g. https://track.example.com, no trailing slash
    reply_domain: str

    def for_message(self, message_id: str) -> MessageLinks:
        """The links of one message (each token is signed once, when first used)."""
        return MessageLinks(self, message_id)


class MessageLinks:
    """The signed URLs and addresses of one message."""

    def __init__(self, links: TrackingLinks, message_id: str) -> None:
        self._links = links
        self.message_id = message_id

    def _token(self, purpose: TokenPurpose) -> str:
        return self._links.signer.sign(purpose, self.message_id)

    @cached_property
    def open_url(self) -> str:
        return f"{self._links.tracking_url}/t/o/{self._token(TokenPurpose.OPEN)}"

    @cached_property
    def unsubscribe_url(self) -> str:
        return f"{self._links.tracking_url}/u/{self._token(TokenPurpose.UNSUBSCRIBE)}"

    @cached_property
    def unsubscribe_mailto(self) -> str:
        token = self._token(TokenPurpose.UNSUBSCRIBE)
        return f"mailto:unsubscribe+{token}@{self._links.reply_domain}?subject=unsubscribe"

    @cached_property
    def reply_address(self) -> str:
        return f"reply+{self._token(TokenPurpose.REPLY)}@{self._links.reply_domain}"

    def click_url(self, link_index: int) -> str:
        payload = click_payload(self.message_id, link_index)
        token = self._links.signer.sign(TokenPurpose.CLICK, payload)
        return f"{self._links.tracking_url}/t/c/{token}"
