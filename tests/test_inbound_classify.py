"""Reading inbound mail: the corpus of real-looking messages, Inbound Parse posts, bad input.

``tests/data/inbound/*.eml`` are messages as Gmail, Outlook (desktop and web), Apple
Mail, iOS and Android clients, Exchange, iCloud, Postfix, qmail and Gmail's mailer
daemon write them (CRLF lines, encoded words, quoted-printable and base64 parts).
Each one's reading is spelled out in ``CORPUS``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from _support import REPO_ROOT, assert_one_problem, explain, invoke, json_output, line_number
from sendgrid.helpers import inbound as inbound_helpers

from engine.replies import (
    Classification,
    InboundKind,
    InboundPostError,
    ReplyRules,
    classify,
    load_reply_rules,
    raw_mime_of,
    read_post,
    read_reply_rules,
)
from engine.vocabulary import ReplyIntent
from engine.workspace import Workspace

CORPUS_DIR = Path(__file__).parent / "data" / "inbound"
SAMPLES = Path(inbound_helpers.__file__).parent / "sample_data"
REPLY_TOKEN = "reply+q7rbm2k4ztx6wd3c.1a2b3c@reply.salescycle-demo.example"
OUR_MESSAGE = "<20261124081200.q7rbm2k4ztx6wd3c@mail.salescycle-demo.example>"
K, Intent = InboundKind, ReplyIntent


@dataclass(frozen=True)
class Reading:
    """How one corpus message must be read."""

    kind: InboundKind
    intent: ReplyIntent | None = None
    language: str | None = None
    has: tuple[str, ...] = ()  # in the text
    lacks: tuple[str, ...] = ()  # quoted text and signatures: not in the text
    bounced: dict[str, bool] = field(default_factory=dict)  # address: hard
    returns_on: dt.date | None = None
    referrals: tuple[str, ...] = ()
    reason: str = ""


EN_QUOTE = ("I noticed Nordlys is hiring", "wrote:")
DA_QUOTE = ("Jeg kunne se, at Nordlys", "skrev")
CORPUS = {
    # human replies, English
    "gmail-en-interested.eml": Reading(K.REPLY, Intent.INTERESTED, "en",
        ("Could we set up a call next Tuesday",), (*EN_QUOTE, "Head of Sales", "+45 31 22 40 17")),
    "gmail-en-other.eml": Reading(K.REPLY, Intent.OTHER, None, ("travelling this week",), EN_QUOTE,
        reason="no intent phrase"),
    "gmail-en-unsubscribe.eml": Reading(K.UNSUBSCRIBE_REQUEST, Intent.UNSUBSCRIBE_REQUEST, "en",
        ("Please remove me",), EN_QUOTE, reason="phrase 'please remove me' (en)"),
    "outlook-desktop-en-objection.eml": Reading(K.REPLY, Intent.OBJECTION, "en",
        ("budget is spent", "Try me again in the spring"),
        (*EN_QUOTE, "Sent: Tuesday", "VP Sales")),
    "outlook-desktop-en-other-quote-says-interested.eml": Reading(K.REPLY, Intent.OTHER, None,
        ("Who gave you my address?",), (*EN_QUOTE, "interested", "From: Mette")),
    "outlook-web-en-not-interested.eml": Reading(K.REPLY, Intent.NOT_INTERESTED, "en",
        ("not interested at this time",), (*EN_QUOTE, "Regards"),
        reason="phrase 'not interested' (en) of rule not_interested"),
    "outlook-web-en-referral.eml": Reading(K.REPLY, Intent.REFERRAL, "en",
        ("my colleague Jane Holt",), (*EN_QUOTE, "________________"),
        referrals=("jane.holt@nordlys.example",)),
    "apple-mail-en-interested-inline.eml": Reading(K.REPLY, Intent.INTERESTED, "en",
        ("four of them, starting in January", "Thursday at 14:00 works for me"),
        ("> Are you interested", "Are you interested", "hiring SDRs", "Best regards")),
    "ios-en-interested.eml": Reading(K.REPLY, Intent.INTERESTED, "en", ("send me a proposal",),
        (*EN_QUOTE, "Sent from my iPhone")),
    "android-gmail-en-objection.eml": Reading(K.REPLY, Intent.OBJECTION, "en",
        ("locked into a contract",), EN_QUOTE),
    # human replies, Danish (and one Swedish, one German)
    "gmail-da-interested.eml": Reading(K.REPLY, Intent.INTERESTED, "da",
        ("lad os tage et møde", "Torsdag formiddag"), (*DA_QUOTE, "Salgschef", "Mvh")),
    "gmail-da-other.eml": Reading(K.REPLY, Intent.OTHER, None, ("Modtaget.",),
        (*DA_QUOTE, "Hilsen Jens")),
    "outlook-desktop-da-not-interested.eml": Reading(K.REPLY, Intent.NOT_INTERESTED, "da",
        ("ikke relevant for os",), (*DA_QUOTE, "Fra: Mette", "Emne:", "Direktør")),
    "outlook-desktop-da-unsubscribe.eml": Reading(K.UNSUBSCRIBE_REQUEST, Intent.UNSUBSCRIBE_REQUEST,
        "da", ("fjern mig fra jeres liste",), DA_QUOTE),
    "outlook-web-da-referral.eml": Reading(K.REPLY, Intent.REFERRAL, "da",
        ("min kollega Mette Lind",), (*DA_QUOTE, "Venlig hilsen"),
        referrals=("mette.lind@blaabaer.example",)),
    "apple-mail-da-objection.eml": Reading(K.REPLY, Intent.OBJECTION, "da", ("for dyrt",),
        (*DA_QUOTE, "Venlig hilsen")),
    "ios-da-not-interested.eml": Reading(K.REPLY, Intent.NOT_INTERESTED, "da",
        ("ikke interesseret",), (*DA_QUOTE, "Sendt fra min iPhone")),
    "ios-da-interested-referral-cc.eml": Reading(K.REPLY, Intent.REFERRAL, "da",
        ("kasper.n@nordlys.example",), (*DA_QUOTE, "Sendt fra min iPhone"),
        referrals=("kasper.n@nordlys.example",)),
    "android-samsung-da-interested.eml": Reading(K.REPLY, Intent.INTERESTED, "da",
        ("ring gerne til mig",), ("Oprindelig besked", "Fra: Mette", *DA_QUOTE, "Sendt fra min")),
    "gmail-sv-interested.eml": Reading(K.REPLY, Intent.INTERESTED, "sv", ("boka ett möte",),
        ("skrev", "Vänliga hälsningar")),
    "gmail-de-objection.eml": Reading(K.REPLY, Intent.OBJECTION, "de", ("zu teuer",),
        ("schrieb", "Mit freundlichen Grüßen")),
    # auto-replies
    "ooo-exchange-en.eml": Reading(K.AUTO_REPLY, None, "en", ("out of the office",),
        returns_on=dt.date(2026, 12, 14),
        reason="subject 'Automatic reply:' with X-MS-Exchange-Inbox-Rules-Loop"),
    "ooo-exchange-da-html-only.eml": Reading(K.AUTO_REPLY, None, "da", ("ikke på kontoret",),
        ("<p>", "margin"), returns_on=dt.date(2026, 12, 7),
        reason="subject 'Automatisk svar:' with X-MS-Exchange-Inbox-Rules-Loop"),
    "ooo-icloud-en.eml": Reading(K.AUTO_REPLY, None, "en", ("on vacation",),
        returns_on=dt.date(2026, 12, 14), reason="X-Apple-Action: VACATION"),
    "ooo-gmail-vacation-en.eml": Reading(K.AUTO_REPLY, None, "en", ("on holiday",),
        returns_on=dt.date(2026, 12, 14), reason="Auto-Submitted: auto-replied"),
    "ooo-de-zurueck.eml": Reading(K.AUTO_REPLY, None, "de", ("nicht im Büro",),
        returns_on=dt.date(2026, 12, 7), reason="Auto-Submitted: auto-replied (vacation)"),
    "ooo-sv-year-end.eml": Reading(K.AUTO_REPLY, None, "sv", ("Åter den 3/1",),
        returns_on=dt.date(2027, 1, 3), reason="X-Autoreply: yes"),
    "ooo-da-subject-only.eml": Reading(K.AUTO_REPLY, None, "da", ("holder ferie",),
        returns_on=dt.date(2027, 1, 4), reason="subject 'Fraværende: Re: Kort spørgsmål'"),
    "ooo-en-no-date.eml": Reading(K.AUTO_REPLY, None, "en", ("limited access",), returns_on=None),
    "ooo-precedence-en.eml": Reading(K.AUTO_REPLY, None, "en", ("annual leave",),
        returns_on=dt.date(2026, 12, 14),
        reason="Precedence: auto_reply with out-of-office phrase 'out of the office' (en)"),
    "ooo-en-back-monday.eml": Reading(K.AUTO_REPLY, None, "en", ("back on Monday",),
        returns_on=dt.date(2026, 11, 30)),
    "read-receipt.eml": Reading(K.AUTO_REPLY, None, None, ("was read",),
        reason="report-type=disposition-notification"),
    # bounces (most also carry Auto-Submitted)
    "bounce-postfix-hard.eml": Reading(K.BOUNCE, bounced={"ghost@nordlys.example": True},
        has=("User unknown",)),
    "bounce-postfix-soft-delayed.eml": Reading(K.BOUNCE,
        bounced={"lager@blaabaer.example": False}),
    "bounce-postfix-two-recipients.eml": Reading(K.BOUNCE,
        bounced={"old.cto@harbor.example": True, "sales@harbor.example": False}),
    "bounce-o365-ndr.eml": Reading(K.BOUNCE,
        bounced={"former.employee@acme-analytics.example": True}, has=("couldn't be delivered",)),
    "bounce-exchange-expired-soft.eml": Reading(K.BOUNCE,
        bounced={"vertrieb@bergwerk.example": False}),
    "bounce-gmail-hard.eml": Reading(K.BOUNCE, bounced={"nobody.here@gmail.com": True},
        has=("Address not found",)),
    "bounce-gmail-soft-delay.eml": Reading(K.BOUNCE,
        bounced={"kontakt@fjordsystems.example": False}),
    "bounce-qmail-plain.eml": Reading(K.BOUNCE, bounced={"info@oldhost.example": True},
        reason="bounce from the mail server"),
}  # fmt: skip


@pytest.fixture(scope="module")
def rules() -> ReplyRules:
    return load_reply_rules(Workspace(REPO_ROOT))


def read(name: str, rules: ReplyRules) -> Classification:
    return classify((CORPUS_DIR / name).read_bytes(), rules)


def test_the_corpus_is_every_file_and_written_as_mail_is() -> None:
    files = sorted(p.name for p in CORPUS_DIR.glob("*.eml"))
    assert files == sorted(CORPUS) and len(files) >= 30
    for name in files:
        data = (CORPUS_DIR / name).read_bytes()
        assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b""), name


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_each_message_is_read_as_its_table_row_says(name: str, rules: ReplyRules) -> None:
    expected, got = CORPUS[name], read(name, rules)

    assert (got.kind, got.intent) == (expected.kind, expected.intent), got.reason
    assert got.language == expected.language, got.reason
    for text in expected.has:
        assert text in got.text, f"{text!r} missing from {got.text!r}"
    for text in expected.lacks:
        assert text not in got.text, f"{text!r} left in {got.text!r}"
    assert {b.email: b.hard for b in got.bounced} == expected.bounced
    assert got.returns_on == expected.returns_on
    assert got.referrals == expected.referrals
    assert expected.reason in got.reason


def test_the_headers_that_match_a_reply_to_ours_are_read(rules: ReplyRules) -> None:
    got = read("outlook-web-da-referral.eml", rules)

    assert got.sender == "soren.jaeger@blaabaer.example"
    assert got.recipients == (REPLY_TOKEN,)
    assert got.subject == "SV: Kort spørgsmål om jeres salg"  # an encoded word, decoded
    assert (got.in_reply_to, got.references) == (OUR_MESSAGE, (OUR_MESSAGE,))
    assert got.message_id is not None and got.message_id.startswith("<AM9PR07MB")
    assert got.sent_at == dt.datetime(2026, 11, 25, 9, 12, 54, tzinfo=dt.UTC)


def test_a_referral_leaves_out_the_sender_and_our_own_addresses(rules: ReplyRules) -> None:
    raw = _message(
        "I'm not the right person. Please contact lisa@nordlys.example or write back to "
        f"{REPLY_TOKEN}; my own address anna@nordlys.example stays the same.",
        sender="anna@nordlys.example",
    )
    got = classify(raw, rules, envelope_to=[REPLY_TOKEN])

    assert got.intent is Intent.REFERRAL
    assert got.referrals == ("lisa@nordlys.example",)


def test_a_bounce_comes_before_its_auto_submitted_header(rules: ReplyRules) -> None:
    raw = (CORPUS_DIR / "bounce-gmail-hard.eml").read_bytes()
    assert b"Auto-Submitted: auto-replied" in raw
    assert classify(raw, rules).kind is K.BOUNCE


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({"Auto-Submitted": "no"}, K.REPLY),
        ({"X-Auto-Response-Suppress": "All"}, K.REPLY),  # ordinary Outlook mail has it
        ({"Precedence": "bulk"}, K.REPLY),  # without out-of-office phrasing
        ({"Subject": "Automatic reply: hi"}, K.REPLY),  # without the Exchange loop header
        ({"Auto-Submitted": "auto-generated"}, K.AUTO_REPLY),
        ({"X-Autorespond": "yes"}, K.AUTO_REPLY),
    ],
)
def test_auto_reply_marks(headers: dict[str, str], kind: InboundKind, rules: ReplyRules) -> None:
    raw = _message("Sounds good, let's talk on Thursday.", headers=headers)
    assert classify(raw, rules).kind is kind


def test_out_of_office_words_from_a_person_are_a_reply(rules: ReplyRules) -> None:
    raw = _message("I'm on holiday next week, so let's talk after. Sounds interesting!")
    got = classify(raw, rules)
    assert (got.kind, got.intent) == (K.REPLY, Intent.INTERESTED)


def test_the_first_rule_in_file_order_wins_across_line_breaks_and_case(tmp_path: Path) -> None:
    workspace = _workspace(tmp_path, "intents:\n  interested:\n    en: [Send Me\n      Pricing]\n"
                           "  objection:\n    en: [pricing]\n")  # fmt: skip
    rules = load_reply_rules(workspace)
    got = classify(_message("could you send\nme   pricing please"), rules)
    assert (got.intent, got.reason) == (Intent.INTERESTED, "phrase 'Send Me Pricing' (en) of rule "
                                        "interested")  # fmt: skip


# ------------------------------------------------------------ SendGrid Inbound Parse posts


def _sample(name: str) -> bytes:
    """A sample post as sent over HTTP: multipart framing is CRLF (the files use LF)."""
    return (SAMPLES / name).read_bytes().replace(b"\n", b"\r\n")


FORM = "multipart/form-data; boundary=xYzZY"


def test_a_parsed_sample_post_is_rebuilt_into_an_equivalent_message(rules: ReplyRules) -> None:
    post = read_post(_sample("default_data.txt"), FORM)

    assert not post.sent_raw
    assert post.envelope_to == ("inbound@inbound.example.com",)
    assert post.envelope_from == "test@example.com"
    message = message_from_bytes(post.mime, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "Inbound Parse Test Data"
    assert message["Date"] == "Wed, 10 Aug 2016 18:10:13 -0700"
    assert message.get_content_type() == "multipart/alternative"
    assert "001a113df448cad2d00539c16e89" not in post.mime.decode()  # the old boundary is gone
    got = classify(post.mime, rules, post.envelope_to)
    assert (got.kind, got.text) == (K.REPLY, "Hello Twilio SendGrid!")
    assert got.recipients == ("inbound@inbound.example.com",)


@pytest.mark.parametrize("name", ["raw_data.txt", "raw_data_with_attachments.txt"])
def test_a_raw_sample_post_gives_the_email_field_as_it_came(name: str, rules: ReplyRules) -> None:
    body = _sample(name)
    post = read_post(body, FORM)

    assert post.sent_raw and post.envelope_to == ("inbound@inbound.inbound.com",)
    start = body.index(b"MIME-Version: 1.0")
    assert body[start:].startswith(post.mime) and len(post.mime) > 500
    assert raw_mime_of(body, FORM) == post.mime
    got = classify(post.mime, rules, post.envelope_to)
    assert got.kind is K.REPLY and got.text == "Hello Twilio SendGrid!"


def test_a_parsed_post_keeps_charsets_threading_headers_and_attachments(rules: ReplyRules) -> None:
    headers = (
        f"From: Søren <soren@blaabaer.example>\nTo: {REPLY_TOKEN}\nSubject: SV: Tilbud\n"
        f"In-Reply-To: {OUR_MESSAGE}\nContent-Type: multipart/mixed; boundary=old\n"
    )
    info = {"attachment1": {"filename": "tilbud.pdf", "type": "application/pdf"}}
    body = _form(
        {"headers": headers.encode(), "text": "Nej tak, ikke interesseret.\n".encode("latin-1"),
         "envelope": json.dumps({"to": [REPLY_TOKEN], "from": "soren@blaabaer.example"}).encode(),
         "charsets": b'{"text": "iso-8859-1", "headers": "UTF-8"}', "attachments": b"1",
         "attachment-info": json.dumps(info).encode()},
        files={"attachment1": ("tilbud.pdf", b"%PDF-1.4\n" + bytes(range(256)))},
    )  # fmt: skip
    post = read_post(body, "multipart/form-data; boundary=b0und")
    message = message_from_bytes(post.mime, policy=policy.default)

    assert isinstance(message, EmailMessage)
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "tilbud.pdf"
    assert attachment.get_content() == b"%PDF-1.4\n" + bytes(range(256))
    got = classify(post.mime, rules, post.envelope_to)
    assert (got.intent, got.in_reply_to, got.text) == (
        Intent.NOT_INTERESTED, OUR_MESSAGE, "Nej tak, ikke interesseret.")  # fmt: skip


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{}"),
        ("multipart/form-data", b"--x\r\n"),  # no boundary
        ("multipart/form-data; boundary=b0und", b"--b0und\r\nContent-Disposition: form-data"),
        ("multipart/form-data; boundary=b0und", b""),
    ],
    ids=["json", "no-boundary", "truncated", "empty"],
)
def test_a_post_that_is_no_form_with_a_message_is_one_clear_error(
    content_type: str, body: bytes
) -> None:
    with pytest.raises(InboundPostError):
        read_post(body, content_type)


def test_a_form_without_message_fields_is_an_error() -> None:
    body = _form({"SPF": b"pass"})
    with pytest.raises(InboundPostError, match="neither an 'email' field"):
        raw_mime_of(body, "multipart/form-data; boundary=b0und")


# ------------------------------------------------------------ bad input never crashes

MALFORMED = {
    "empty": b"",
    "garbage": bytes(range(256)) * 40,
    "no-headers": b"just some words\r\nwithout any header\r\n",
    "unknown-charset": b"From: a@b.example\r\nContent-Type: text/plain; charset=x-klingon-7\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\nNot interested, \xff\xfe thanks.\r\n",
    "broken-base64": b"From: a@b.example\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64***\r\n",
    "unclosed-multipart": b"From: a@b.example\r\nContent-Type: multipart/alternative; "
    b'boundary="zz"\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nnot interested\r\n',
    "bad-headers": b"From: <<<@@@>>>\r\nDate: the day after tomorrow\r\nSubject: =?bogus?x?==?=\r\n"
    b"Message-ID: no brackets\r\nContent-Type: text/plain; charset=\r\n\r\nHello\r\n",
    "report-without-parts": b"From: MAILER-DAEMON@x.example\r\nContent-Type: multipart/report; "
    b"report-type=delivery-status; boundary=q\r\n\r\nnothing here\r\n",
    "html-broken": b"From: a@b.example\r\nContent-Type: text/html\r\n\r\n<div><p>Sounds good<",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_messages_still_get_a_classification(name: str, rules: ReplyRules) -> None:
    got = classify(MALFORMED[name], rules)
    assert isinstance(got, Classification) and isinstance(got.text, str)
    assert got.kind in (K.REPLY, K.AUTO_REPLY, K.BOUNCE, K.UNSUBSCRIBE_REQUEST)


def test_what_can_be_read_of_a_malformed_message_is_read(rules: ReplyRules) -> None:
    got = classify(MALFORMED["unknown-charset"], rules)
    assert got.intent is Intent.NOT_INTERESTED and got.sender == "a@b.example"
    assert classify(MALFORMED["bad-headers"], rules).sent_at is None


def test_a_huge_body_is_read_in_part(rules: ReplyRules) -> None:
    words = "Not interested. " + "lorem ipsum dolor sit amet\r\n" * 400_000  # about 11 MB
    got = classify(_message(words), rules)
    assert got.intent is Intent.NOT_INTERESTED and len(got.text) <= 100_000


# ------------------------------------------------------------ config/replies.yaml


@pytest.mark.parametrize(
    ("text", "at", "says"),
    [
        ("intents:\n  intrested:\n    en: [yes please]\n", "intrested:",
         "unknown intent 'intrested'; did you mean 'interested'?"),
        ("intents:\n  interested:\n    dk: [ja tak]\n", "dk:",
         "unknown language 'dk'; valid: en, da, sv, de"),
        ("intents:\n  other:\n    en: [hello]\n", "other:", "'other' is what a reply"),
        ("intents:\n  interested:\n    en: [ok, 'x']\n", "en:", "phrase 'x' is too short"),
        ("auto_reply:\n  resume_after: 3\n", "resume_after:",
         "unknown key 'resume_after'; did you mean 'resume_after_days'?"),
        ("auto_reply:\n  resume_after_days: -1\n", "resume_after_days:",
         "greater than or equal to 0"),
        ("intents:\n  interested:\n    en: [a b]\n  interested:\n    en: [c d]\n",
         "  interested:\n    en: [c d]", "duplicate key"),
    ],
    ids=["intent", "language", "other", "short", "key", "days", "duplicate"],
)  # fmt: skip
def test_rules_file_mistakes_name_their_line(tmp_path: Path, text: str, at: str, says: str) -> None:
    workspace = _workspace(tmp_path, text)
    _, problems = read_reply_rules(workspace)

    assert len(problems) == 1, problems
    [problem] = problems
    expected_line = text[: text.index(at)].count("\n") + 1
    assert str(problem).startswith(f"config/replies.yaml:{expected_line}: "), str(problem)
    assert says in problem.message


def test_a_workspace_without_the_file_reads_the_starter_rules(tmp_path: Path) -> None:
    rules, problems = read_reply_rules(Workspace(tmp_path))
    assert problems == [] and rules is not None
    assert classify(_message("afmeld mig"), rules).kind is K.UNSUBSCRIBE_REQUEST


def test_check_reports_a_mistake_in_replies_yaml(workspace: Path) -> None:
    path = workspace / "config" / "replies.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("  objection:", "  objections:"))

    result = invoke("check", "--workspace", workspace)

    line = line_number(path, "  objections:")
    assert_one_problem(result, "config/replies.yaml", line, ["unknown intent 'objections'"])


def test_check_lists_replies_yaml_among_the_files_checked(workspace: Path) -> None:
    result = invoke("check", "--workspace", workspace, "--json")
    assert result.exit_code == 0, explain(result)
    assert "config/replies.yaml" in json_output(result)["checked"]


# ------------------------------------------------------------ salescycle inbound classify


def test_the_cli_prints_kind_intent_reason_text_and_headers() -> None:
    path = CORPUS_DIR / "outlook-web-en-referral.eml"
    result = invoke("inbound", "classify", path, "--workspace", REPO_ROOT)

    assert result.exit_code == 0, explain(result)
    for line in ("kind:        reply", "intent:      referral", "language:    en",
                 "referrals:   jane.holt@nordlys.example", f"in-reply-to: {OUR_MESSAGE}",
                 "  I'm not the right person for this."):  # fmt: skip
        assert line in result.output
    assert "I noticed Nordlys" not in result.output


def test_the_cli_prints_json_for_a_bounce() -> None:
    path = CORPUS_DIR / "bounce-postfix-two-recipients.eml"
    result = invoke("inbound", "classify", path, "--workspace", REPO_ROOT, "--json")

    assert result.exit_code == 0, explain(result)
    data = json_output(result)
    assert data["kind"] == "bounce" and data["intent"] is None
    assert data["bounced"] == [{"email": "old.cto@harbor.example", "hard": True},
                               {"email": "sales@harbor.example", "hard": False}]  # fmt: skip
    assert data["headers"]["from"] == "mailer-daemon@smtp.harbor.example"


def test_the_cli_reads_a_stored_inbound_parse_post(tmp_path: Path) -> None:
    path = tmp_path / "post.txt"
    path.write_bytes(_sample("default_data.txt"))
    result = invoke("inbound", "classify", path, "--workspace", REPO_ROOT, "--json")

    assert result.exit_code == 0, explain(result)
    data = json_output(result)
    assert data["text"] == "Hello Twilio SendGrid!"
    assert data["headers"]["recipients"] == ["inbound@inbound.example.com"]


def test_the_cli_reports_an_out_of_office_return_date() -> None:
    path = CORPUS_DIR / "ooo-exchange-da-html-only.eml"
    result = invoke("inbound", "classify", path, "--workspace", REPO_ROOT)

    assert result.exit_code == 0, explain(result)
    assert "kind:        auto_reply" in result.output
    assert "returns on:  2026-12-07" in result.output


def test_the_cli_names_a_missing_file(tmp_path: Path) -> None:
    result = invoke("inbound", "classify", tmp_path / "nope.eml", "--workspace", REPO_ROOT)
    assert result.exit_code != 0
    assert "nope.eml" in result.output


# ------------------------------------------------------------ helpers


def _message(
    text: str, sender: str = "pat@nordlys.example", headers: dict[str, str] | None = None
) -> bytes:
    extra = dict(headers or {})
    message = EmailMessage()
    message["From"] = f"Pat <{sender}>"
    message["To"] = REPLY_TOKEN
    message["Subject"] = extra.pop("Subject", "Re: Quick question")
    message["Date"] = "Tue, 24 Nov 2026 10:00:00 +0100"
    for name, value in extra.items():
        message[name] = value
    message.set_content(text)
    return message.as_bytes()


def _form(fields: dict[str, bytes], files: dict[str, tuple[str, bytes]] | None = None) -> bytes:
    parts = [b'--b0und\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n'
             + value + b"\r\n" for name, value in fields.items()]  # fmt: skip
    for name, (filename, data) in (files or {}).items():
        parts.append(
            b'--b0und\r\nContent-Disposition: form-data; name="' + name.encode() + b'"; filename="'
            + filename.encode() + b'"\r\nContent-Type: application/pdf\r\n\r\n' + data + b"\r\n"
        )  # fmt: skip
    return b"".join(parts) + b"--b0und--\r\n"


def _workspace(tmp_path: Path, replies_yaml: str) -> Workspace:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "replies.yaml").write_text(replies_yaml, encoding="utf-8")
    return Workspace(tmp_path)
