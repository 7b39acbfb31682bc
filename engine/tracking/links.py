"""The addresses and URLs that bring a message's replies, opens, clicks and opt-outs back."""

from __future__ import annotations

from dataclasses import dataclass

from engine.tracking.tokens import TokenPurpose, TokenSigner, click_payload


@dataclass(frozen=True)
class TrackingLinks:
    """Builds signed tracking URLs and reply addresses for messages."""

    signer: TokenSigner
    tracking_url: str  # e.g. https://track.example.com, no trailing slash
    reply_domain: str

    def open_url(self, message_id: str) -> str:
        return f"{self.tracking_url}/t/o/{self.signer.sign(TokenPurpose.OPEN, message_id)}"

    def click_url(self, message_id: str, link_index: int) -> str:
        token = self.signer.sign(TokenPurpose.CLICK, click_payload(message_id, link_index))
        return f"{self.tracking_url}/t/c/{token}"

    def unsubscribe_url(self, message_id: str) -> str:
        return f"{self.tracking_url}/u/{self.signer.sign(TokenPurpose.UNSUBSCRIBE, message_id)}"

    def unsubscribe_mailto(self, message_id: str) -> str:
        token = self.signer.sign(TokenPurpose.UNSUBSCRIBE, message_id)
        return f"mailto:unsubscribe+{token}@{self.reply_domain}?subject=unsubscribe"

    def reply_address(self, message_id: str) -> str:
        return f"reply+{self.signer.sign(TokenPurpose.REPLY, message_id)}@{self.reply_domain}"
