"""What people write back, as the raw MIME their mail servers would hand to Inbound Parse:
replies of every intent in English and Danish, out-of-office notices with a return date,
and delivery status notifications for addresses that do not exist."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from engine.demo.people import Person

# Each intent's replies per language; every one of them uses a phrase config/replies.yaml
# knows (tests/test_demo.py reads each back through the real classifier).
REPLIES: dict[str, dict[str, tuple[str, ...]]] = {
    "interested": {
        "en": (
            "Sounds interesting. Let's set up a call - Tuesday or Wednesday afternoon works.",
            "Happy to talk. Could you send over a proposal first?",
            "Tell me more - what does pricing look like for a team of 12 reps?",
        ),
        "da": (
            "Det lyder spændende. Lad os tage et møde i næste uge.",
            "Vil gerne høre mere. Ring gerne til mig torsdag formiddag.",
        ),
    },
    "objection": {
        "en": (
            "Thanks, but we already use HubSpot sequences for this.",
            "Bad timing, I'm afraid: the budget is spent. Try me again next quarter.",
            "We are locked into a contract with another vendor until the autumn.",
        ),
        "da": (
            "Tak, men det er for dyrt for os i år.",
            "Det er ikke det rigtige tidspunkt. Skriv igen næste kvartal.",
        ),
    },
    "not_interested": {
        "en": ("Not interested, thanks.", "No thanks - not a fit for how we sell."),
        "da": ("Nej tak, ikke interesseret.", "Det er ikke relevant for os."),
    },
    "referral": {
        "en": (
            "I'm not the right person for this. Please contact my colleague "
            "{colleague_name} ({colleague}) who is in charge of sales operations.",
        ),
        "da": (
            "Det er ikke mig, der står for det. Tag fat i min kollega "
            "{colleague_name} ({colleague}).",
        ),
    },
    "unsubscribe_request": {
        "en": ("Please remove me from your list.",),
        "da": ("Afmeld mig venligst. Fjern mig fra listen.",),
    },
    "other": {
        "en": ("Who gave you my address?", "I'm travelling this week; will read it later."),
        "da": ("Hvem har givet jer min adresse?",),
    },
}
# The referral request gets names back; the check-in a short word of thanks.
CUSTOMER_REPLIES: dict[str, dict[str, tuple[str, ...]]] = {
    "referral": {
        "en": (
            "Happy to help! You should talk to {colleague_name} ({colleague}), "
            "a former colleague who now runs a sales team.",
        ),
        "da": ("Gerne! Kontakt venligst {colleague_name} ({colleague}), min tidligere kollega.",),
    },
}
_MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
    "da": ("januar", "februar", "marts", "april", "maj", "juni", "juli", "august",
           "september", "oktober", "november", "december"),
}  # fmt: skip
_WROTE = {"en": "On {date}, {name} wrote:", "da": "Den {date} skrev {name}:"}
_COLLEAGUES = ("Sofie Holm", "Lars Berg", "Emma Nyström", "Oliver Dahl", "Nora Lund", "Mads Krog")


def reply_text(intent: str, who: Person, rng: random.Random, customer: bool = False) -> str:
    """The words of a reply with this intent, in the person's language."""
    table = CUSTOMER_REPLIES if customer and intent in CUSTOMER_REPLIES else REPLIES
    text = rng.choice(table[intent][who.language])
    colleague_name = rng.choice(_COLLEAGUES)
    first, _, last = colleague_name.lower().partition(" ")
    colleague = f"{_ascii(first)}.{_ascii(last)}@{who.domain}"
    return text.format(colleague_name=colleague_name, colleague=colleague)


def reply_mime(
    who: Person, original: OriginalMail, text: str, at: dt.datetime, rng: random.Random
) -> bytes:
    """A person's reply: their words over the quoted original, threaded onto it."""
    quoted = "\n".join(f"> {line}" for line in original.text.splitlines()[:6])
    wrote = _WROTE[who.language].format(date=_date(at, who.language), name=original.sender_name)
    message = _headed(who, original, f"Re: {original.subject}", at, rng)
    message.set_content(f"{text}\n\n{who.first_name}\n\n{wrote}\n{quoted}\n")
    return message.as_bytes()


def out_of_office_mime(
    who: Person, original: OriginalMail, back: dt.date, at: dt.datetime, rng: random.Random
) -> bytes:
    """An automatic reply naming the day the person is back."""
    if who.language == "da":
        subject = f"Autosvar: {original.subject}"
        body = (
            f"Hej\n\nJeg er ikke på kontoret og er tilbage {back.day}. "
            f"{_MONTHS['da'][back.month - 1]} {back.year}.\n\nMvh {who.first_name}\n"
        )
    else:
        subject = f"Automatic reply: {original.subject}"
        body = (
            f"Hello,\n\nI am out of the office and back on {back.day} "
            f"{_MONTHS['en'][back.month - 1]} {back.year}.\n\nBest,\n{who.first_name}\n"
        )
    message = _headed(who, original, subject, at, rng)
    message["Auto-Submitted"] = "auto-replied"
    message.set_content(body)
    return message.as_bytes()


def bounce_mime(who: Person, original: OriginalMail, at: dt.datetime, rng: random.Random) -> bytes:
    """The receiving server's delivery status notification: the address does not exist."""
    host, boundary = f"mx1.{who.domain}", f"==_report_{rng.getrandbits(32):08x}"
    return _DSN.format(
        host=host, boundary=boundary, to=original.reply_to, date=format_datetime(at),
        id=f"{rng.getrandbits(48):012x}", rcpt=who.email, sender=original.sender,
        subject=original.subject, original=original.rfc_message_id,
    ).replace("\n", "\r\n").encode("utf-8")  # fmt: skip


_DSN = """From: Mail Delivery System <MAILER-DAEMON@{host}>
To: {to}
Subject: Undelivered Mail Returned to Sender
Date: {date}
Message-ID: <{id}.dsn@{host}>
MIME-Version: 1.0
Auto-Submitted: auto-replied
Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=us-ascii

This is the mail system at host {host}.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{rcpt}>: host {host} said: 550 5.1.1 <{rcpt}>:
    Recipient address rejected: User unknown in virtual mailbox table

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns; {host}

Final-Recipient: rfc822; {rcpt}
Original-Recipient: rfc822;{rcpt}
Action: failed
Status: 5.1.1
Remote-MTA: dns; {host}
Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown

--{boundary}
Content-Type: text/rfc822-headers

From: {sender}
To: {rcpt}
Subject: {subject}
Message-ID: {original}
Reply-To: {to}

--{boundary}--
"""


@dataclass(frozen=True)
class OriginalMail:
    """What a reply needs of the message it answers."""

    sender: str
    sender_name: str
    reply_to: str
    subject: str
    rfc_message_id: str
    text: str


def _headed(
    who: Person, original: OriginalMail, subject: str, at: dt.datetime, rng: random.Random
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = formataddr((who.name, who.email))
    message["To"] = original.reply_to
    message["Subject"] = subject
    message["Date"] = format_datetime(at)
    message["Message-ID"] = f"<{rng.getrandbits(64):016x}@mail.{who.domain}>"
    message["In-Reply-To"] = original.rfc_message_id
    message["References"] = original.rfc_message_id
    return message


def _date(at: dt.datetime, language: str) -> str:
    return f"{at.day} {_MONTHS[language][at.month - 1]} {at.year}"


def _ascii(name: str) -> str:
    return name.translate(_ASCII)


_ASCII = str.maketrans({"ö": "o", "ø": "o", "å": "a", "æ": "ae"})
