"""Signed tokens and the tracking URLs and reply addresses that carry them."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.tracking import (
    TokenPurpose,
    TokenSigner,
    TrackingLinks,
    click_payload,
    split_click_payload,
)

KEY = b"0123456789abcdef-test-secret-key"
SIGNER = TokenSigner(KEY)
MESSAGE_ID = "k5x2qhzv7mwa3nre"
LINKS = TrackingLinks(SIGNER, "https://track.example.com", "reply.example.com")
TOKEN = r"[a-z0-9][a-z0-9-]{0,63}\.[0-9a-f]{20}"
PAYLOADS = st.from_regex(r"[a-z0-9][a-z0-9-]{0,63}", fullmatch=True)
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None)
ALL_PURPOSES = list(TokenPurpose)


def _other_char(char: str) -> list[str]:
    """Lower-case token characters other than ``char`` (a case change is no change)."""
    return [c for c in "a0z9-." if c != char.lower()]


@pytest.mark.parametrize("purpose", ALL_PURPOSES)
def test_a_token_verifies_for_its_purpose(purpose: TokenPurpose) -> None:
    token = SIGNER.sign(purpose, MESSAGE_ID)

    assert re.fullmatch(TOKEN, token), token
    assert token.startswith(f"{MESSAGE_ID}.")
    assert SIGNER.verify(purpose, token) == MESSAGE_ID
    # A new signer with the same key (another worker, a restart) accepts it too.
    assert TokenSigner(KEY).verify(purpose, token) == MESSAGE_ID


@pytest.mark.parametrize("signed_for", ALL_PURPOSES)
def test_a_token_is_worthless_for_another_purpose(signed_for: TokenPurpose) -> None:
    token = SIGNER.sign(signed_for, MESSAGE_ID)

    for purpose in ALL_PURPOSES:
        if purpose is not signed_for:
            assert SIGNER.verify(purpose, token) is None, (signed_for, purpose)


def test_purposes_sign_differently() -> None:
    signatures = {SIGNER.sign(purpose, MESSAGE_ID) for purpose in ALL_PURPOSES}

    assert len(signatures) == len(ALL_PURPOSES)


def test_signing_is_deterministic_and_depends_on_the_payload() -> None:
    assert SIGNER.sign(TokenPurpose.OPEN, "abc") == SIGNER.sign(TokenPurpose.OPEN, "abc")
    sig_abc = SIGNER.sign(TokenPurpose.OPEN, "abc").split(".")[1]
    sig_abd = SIGNER.sign(TokenPurpose.OPEN, "abd").split(".")[1]
    assert sig_abc != sig_abd


@pytest.mark.parametrize("purpose", [TokenPurpose.REPLY, TokenPurpose.CLICK])
def test_any_single_character_change_is_refused(purpose: TokenPurpose) -> None:
    # Given a genuine token, payload and signature alike
    token = SIGNER.sign(purpose, click_payload(MESSAGE_ID, 3))
    tried = 0
    for position, char in enumerate(token):
        for replacement in _other_char(char):
            # When one character is replaced
            forged = token[:position] + replacement + token[position + 1 :]
            # Then the token is refused
            assert SIGNER.verify(purpose, forged) is None, (position, forged)
            tried += 1
        dropped = token[:position] + token[position + 1 :]
        assert SIGNER.verify(purpose, dropped) is None, (position, dropped)
    assert tried >= 5 * len(token)


def test_extra_characters_are_refused() -> None:
    token = SIGNER.sign(TokenPurpose.OPEN, MESSAGE_ID)

    for forged in (token + "0", "0" + token, token + ".", f"{token}.{token}", f"x{token}"):
        assert SIGNER.verify(TokenPurpose.OPEN, forged) is None, forged


def test_a_token_from_another_key_is_refused() -> None:
    other = TokenSigner(b"another-secret-key-of-32-bytes!!")
    token = other.sign(TokenPurpose.UNSUBSCRIBE, MESSAGE_ID)

    assert other.verify(TokenPurpose.UNSUBSCRIBE, token) == MESSAGE_ID
    assert SIGNER.verify(TokenPurpose.UNSUBSCRIBE, token) is None
    assert token != SIGNER.sign(TokenPurpose.UNSUBSCRIBE, MESSAGE_ID)


@pytest.mark.parametrize("purpose", ALL_PURPOSES)
def test_an_upper_cased_token_still_verifies(purpose: TokenPurpose) -> None:
    # Mail systems may upper- or lower-case the local part of reply+TOKEN@...
    token = SIGNER.sign(purpose, click_payload(MESSAGE_ID, 12))
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(token))

    assert SIGNER.verify(purpose, token.upper()) == click_payload(MESSAGE_ID, 12)
    assert SIGNER.verify(purpose, mixed) == click_payload(MESSAGE_ID, 12)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        ".",
        "..",
        "...",
        "no-dot-at-all",
        "abc.",
        ".0123456789abcdef0123",
        "abc..0123456789abcdef0123",
        "a b.0123456789abcdef0123",
        "abc_def.0123456789abcdef0123",
        "abc!.0123456789abcdef0123",
        "-abc.0123456789abcdef0123",
        "søren.0123456789abcdef0123",
        "🚀.0123456789abcdef0123",
        "a" * 65 + ".0123456789abcdef0123",
        "a" * 100_000 + "." + "0" * 20,
        "." * 10_000,
        "abc.0123456789abcdef0123\x00",
        "abc.0123456789abcdef0123\n",
        "abc\n.0123456789abcdef0123",
    ],
)
def test_garbage_is_refused_without_raising(garbage: str) -> None:
    for purpose in ALL_PURPOSES:
        assert SIGNER.verify(purpose, garbage) is None


@FUZZ
@given(st.text(max_size=200))
def test_arbitrary_text_is_refused_without_raising(text: str) -> None:
    for purpose in ALL_PURPOSES:
        assert SIGNER.verify(purpose, text) is None


@FUZZ
@given(st.text(max_size=80), st.from_regex(r"[0-9a-f]{20}", fullmatch=True))
def test_arbitrary_payload_text_with_a_hex_signature_is_refused(payload: str, sig: str) -> None:
    token = f"{payload}.{sig}"
    for purpose in ALL_PURPOSES:
        assert SIGNER.verify(purpose, token) is None


@FUZZ
@given(PAYLOADS, st.sampled_from(ALL_PURPOSES))
def test_every_valid_payload_round_trips(payload: str, purpose: TokenPurpose) -> None:
    token = SIGNER.sign(purpose, payload)

    assert re.fullmatch(TOKEN, token)
    assert SIGNER.verify(purpose, token) == payload
    assert SIGNER.verify(purpose, token.upper()) == payload
    for other in ALL_PURPOSES:
        if other is not purpose:
            assert SIGNER.verify(other, token) is None


@pytest.mark.parametrize(
    "payload",
    ["", "ABC", "Abc", "a b", "a.b", "a_b", "a:b", "-abc", "søren", "a" * 65, "abc/", " abc"],
)
def test_sign_refuses_bad_payloads(payload: str) -> None:
    with pytest.raises(ValueError, match="payload"):
        SIGNER.sign(TokenPurpose.OPEN, payload)


def test_unicode_after_the_dot_and_a_trailing_newline_are_refused() -> None:
    token = SIGNER.sign(TokenPurpose.OPEN, MESSAGE_ID)

    assert SIGNER.verify(TokenPurpose.OPEN, "abc.é") is None
    assert SIGNER.verify(TokenPurpose.OPEN, token + "\n") is None
    with pytest.raises(ValueError, match="payload"):
        SIGNER.sign(TokenPurpose.OPEN, "abc\n")


def test_sign_accepts_the_longest_payload() -> None:
    payload = "a" + "-" * 63

    assert SIGNER.verify(TokenPurpose.OPEN, SIGNER.sign(TokenPurpose.OPEN, payload)) == payload


@pytest.mark.parametrize("size", [0, 1, 8, 15])
def test_short_keys_are_refused(size: int) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        TokenSigner(b"k" * size)


@pytest.mark.parametrize("size", [16, 64, 65, 200, 4096])
def test_keys_of_16_bytes_and_longer_work(size: int) -> None:
    signer = TokenSigner(bytes(range(256)) * (size // 256) + bytes(range(size % 256)))
    token = signer.sign(TokenPurpose.REPLY, MESSAGE_ID)

    assert signer.verify(TokenPurpose.REPLY, token) == MESSAGE_ID
    assert SIGNER.verify(TokenPurpose.REPLY, token) is None


def test_long_keys_differing_after_64_bytes_sign_differently() -> None:
    # Given two keys longer than BLAKE2b's 64 bytes that differ only in their last byte
    first = TokenSigner(b"k" * 99 + b"1")
    second = TokenSigner(b"k" * 99 + b"2")

    # Then neither accepts the other's tokens (the tail of a long key is not dropped)
    token = first.sign(TokenPurpose.OPEN, MESSAGE_ID)
    assert first.verify(TokenPurpose.OPEN, token) == MESSAGE_ID
    assert second.verify(TokenPurpose.OPEN, token) is None


def _token_in(pattern: str, text: str) -> str:
    match = re.fullmatch(pattern, text)
    assert match, f"{text!r} does not match {pattern!r}"
    return match.group("token")


def test_message_links_have_the_expected_shapes() -> None:
    links = LINKS.for_message(MESSAGE_ID)
    token = f"(?P<token>{TOKEN})"

    open_token = _token_in(rf"https://track\.example\.com/t/o/{token}", links.open_url)
    unsub_token = _token_in(rf"https://track\.example\.com/u/{token}", links.unsubscribe_url)
    mailto_token = _token_in(
        rf"mailto:unsubscribe\+{token}@reply\.example\.com(\?subject=unsubscribe)?",
        links.unsubscribe_mailto,
    )
    reply_token = _token_in(rf"reply\+{token}@reply\.example\.com", links.reply_address)
    click_token = _token_in(rf"https://track\.example\.com/t/c/{token}", links.click_url(0))

    assert SIGNER.verify(TokenPurpose.OPEN, open_token) == MESSAGE_ID
    assert SIGNER.verify(TokenPurpose.UNSUBSCRIBE, unsub_token) == MESSAGE_ID
    assert SIGNER.verify(TokenPurpose.UNSUBSCRIBE, mailto_token) == MESSAGE_ID
    assert SIGNER.verify(TokenPurpose.REPLY, reply_token) == MESSAGE_ID
    assert SIGNER.verify(TokenPurpose.CLICK, click_token) == click_payload(MESSAGE_ID, 0)
    # Each link's token is good for its own purpose only.
    assert SIGNER.verify(TokenPurpose.UNSUBSCRIBE, open_token) is None
    assert SIGNER.verify(TokenPurpose.OPEN, reply_token) is None
    assert SIGNER.verify(TokenPurpose.REPLY, unsub_token) is None
    assert SIGNER.verify(TokenPurpose.OPEN, click_token) is None


def test_the_reply_address_survives_an_upper_casing_mail_system() -> None:
    address = LINKS.for_message(MESSAGE_ID).reply_address.upper()
    local = address.split("@")[0]

    assert local.startswith("REPLY+")
    assert SIGNER.verify(TokenPurpose.REPLY, local.removeprefix("REPLY+")) == MESSAGE_ID


def test_links_of_different_messages_differ() -> None:
    first = LINKS.for_message(MESSAGE_ID)
    second = LINKS.for_message("m3ssage-two")

    assert first.open_url != second.open_url
    assert first.reply_address != second.reply_address
    assert first.unsubscribe_url != second.unsubscribe_url
    assert SIGNER.verify(TokenPurpose.OPEN, second.open_url.rsplit("/", 1)[1]) == "m3ssage-two"


@pytest.mark.parametrize("index", [0, 1, 7, 42, 999])
def test_a_click_token_carries_the_message_and_the_link_index(index: int) -> None:
    url = LINKS.for_message(MESSAGE_ID).click_url(index)
    token = url.removeprefix("https://track.example.com/t/c/")

    payload = SIGNER.verify(TokenPurpose.CLICK, token)

    assert payload is not None
    assert split_click_payload(payload) == (MESSAGE_ID, index)


def test_click_urls_differ_by_link_index() -> None:
    links = LINKS.for_message(MESSAGE_ID)

    assert len({links.click_url(i) for i in range(50)}) == 50


@pytest.mark.parametrize(
    ("message_id", "index"), [("abc", 0), ("abc-def", 3), ("a-1-2", 10), ("0", 123456)]
)
def test_click_payloads_split_back(message_id: str, index: int) -> None:
    payload = click_payload(message_id, index)

    assert split_click_payload(payload) == (message_id, index)


@pytest.mark.parametrize("payload", ["abc", "abc-", "abc-x", "abc-1x", "abc-1-"])
def test_payloads_without_a_link_index_do_not_split(payload: str) -> None:
    assert split_click_payload(payload) is None
