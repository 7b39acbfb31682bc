"""The file outbox, and choosing a transport from the settings (file, environment)."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from _support import outbound_message

from engine.delivery import (
    Address,
    OutboundMessage,
    OutboxTransport,
    PermanentError,
    RetryableError,
    SendGridTransport,
    SmtpTransport,
    make_transport,
    outbox_messages,
    to_rfc5322,
)
from engine.errors import ConfigurationError, WorkspaceError
from engine.settings import Settings, load_settings
from engine.workspace import Workspace


def _message(message_id: str = "q7rbm2k4ztx6wd3c", subject: str = "Hej Bo 🚀") -> OutboundMessage:
    return outbound_message(
        message_id,
        sender=Address("rep@example.com", "Åsa Lindberg"),
        to=Address("bo@kunde.example.dk", "Bo Nielsen"),
        subject=subject,
        text="Hej Bo,\nkort spørgsmål.\n",
        html="<p>Hej Bo,<br>kort spørgsmål.</p>",
    )


# --- the file outbox --------------------------------------------------------------------------


def test_the_outbox_writes_a_parseable_eml_named_by_the_message_id(tmp_path: Path) -> None:
    handoff = OutboxTransport(tmp_path).send(_message())

    [path] = outbox_messages(tmp_path)
    assert path == tmp_path / "q7rbm2k4ztx6wd3c.eml"
    assert path.read_bytes() == to_rfc5322(_message())
    parsed = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert parsed["Subject"] == "Hej Bo 🚀"
    assert parsed["Message-ID"] == "<q7rbm2k4ztx6wd3c@mail.example.com>"
    assert parsed["To"].addresses[0].addr_spec == "bo@kunde.example.dk"
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None
    assert body.get_content() == "Hej Bo,\r\nkort spørgsmål.\r\n"
    assert (handoff.transport, handoff.provider_message_id) == ("outbox", "q7rbm2k4ztx6wd3c")


def test_writing_the_same_message_again_leaves_one_whole_file(tmp_path: Path) -> None:
    outbox = OutboxTransport(tmp_path)

    outbox.send(_message(subject="first try"))
    outbox.send(_message(subject="first try"))

    assert [p.name for p in tmp_path.iterdir()] == ["q7rbm2k4ztx6wd3c.eml"]  # no temp file left
    assert (tmp_path / "q7rbm2k4ztx6wd3c.eml").read_bytes() == to_rfc5322(
        _message(subject="first try")
    )


def test_a_file_in_the_way_is_replaced_whole(tmp_path: Path) -> None:
    # A crash mid-write can only leave a hidden temp file; the .eml is old or new, never half.
    (tmp_path / "q7rbm2k4ztx6wd3c.eml").write_bytes(b"half a mess")
    (tmp_path / ".q7rbm2k4ztx6wd3c.eml.abc.tmp").write_bytes(b"half a mess")

    OutboxTransport(tmp_path).send(_message())

    assert (tmp_path / "q7rbm2k4ztx6wd3c.eml").read_bytes() == to_rfc5322(_message())
    assert outbox_messages(tmp_path) == [tmp_path / "q7rbm2k4ztx6wd3c.eml"]


def test_outbox_messages_are_sorted_and_a_missing_folder_has_none(tmp_path: Path) -> None:
    outbox = OutboxTransport(tmp_path)
    for message_id in ("zz00000000000000", "aa00000000000000", "mm00000000000000"):
        outbox.send(_message(message_id))

    assert [p.stem for p in outbox_messages(tmp_path)] == [
        "aa00000000000000",
        "mm00000000000000",
        "zz00000000000000",
    ]
    assert outbox_messages(tmp_path / "missing") == []


@pytest.mark.parametrize(
    ("folder", "says"),
    [("missing/outbox", "No such file or directory"), ("a-file/outbox", "Not a directory")],
    ids=["missing", "under-a-file"],
)
def test_a_folder_that_cannot_be_written_is_retryable_with_the_os_error(
    tmp_path: Path, folder: str, says: str
) -> None:
    (tmp_path / "a-file").write_text("not a folder")

    with pytest.raises(RetryableError, match=says) as refused:
        OutboxTransport(tmp_path / folder).send(_message())

    assert str(tmp_path / folder) in str(refused.value)


@pytest.mark.parametrize("message_id", ["../../etc/passwd", ".hidden", "abc\n"])
def test_a_message_id_that_is_no_file_name_is_refused(tmp_path: Path, message_id: str) -> None:
    with pytest.raises(PermanentError, match="cannot be a file name"):
        OutboxTransport(tmp_path).send(_message(message_id))

    assert list(tmp_path.iterdir()) == []


# --- choosing a transport ---------------------------------------------------------------------


def test_the_default_is_the_outbox_in_the_workspace_which_is_created(tmp_path: Path) -> None:
    transport = make_transport(Settings(), tmp_path)

    assert isinstance(transport, OutboxTransport)
    assert transport.folder == tmp_path / "var" / "outbox"
    assert transport.folder.is_dir()


def test_smtp_is_chosen_with_its_settings(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"sending": {"transport": "smtp", "smtp": {"host": "mx.internal", "port": 2525}}}
    )

    transport = make_transport(settings, tmp_path)

    assert isinstance(transport, SmtpTransport)
    assert (transport.host, transport.port) == ("mx.internal", 2525)
    transport.close()


def test_sendgrid_is_chosen_when_its_key_is_set(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"sending": {"transport": "sendgrid"}, "sendgrid_api_key": "SG.factory-test"}
    )

    transport = make_transport(settings, tmp_path)

    assert isinstance(transport, SendGridTransport)
    transport.close()


def test_sendgrid_without_its_key_names_the_variable(tmp_path: Path) -> None:
    settings = Settings.model_validate({"sending": {"transport": "sendgrid"}})

    with pytest.raises(ConfigurationError, match="SENDGRID_API_KEY is not set"):
        make_transport(settings, tmp_path)


def test_an_smtp_password_without_a_username_is_refused(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"sending": {"transport": "smtp"}, "smtp_password": "pa55word"}
    )

    with pytest.raises(ConfigurationError, match=r"sending\.smtp\.username") as refused:
        make_transport(settings, tmp_path)

    assert "pa55word" not in str(refused.value)


def test_a_missing_dkim_key_file_names_the_setting(tmp_path: Path) -> None:
    smtp = {"dkim_selector": "sc2026", "dkim_domain": "example.com", "dkim_key_file": "dkim.pem"}
    settings = Settings.model_validate({"sending": {"transport": "smtp", "smtp": smtp}})

    with pytest.raises(ConfigurationError, match=r"sending\.smtp\.dkim_key_file") as refused:
        make_transport(settings, tmp_path)

    assert str(tmp_path / "dkim.pem") in str(refused.value)


# --- the settings, from the file and the environment ------------------------------------------


def test_transport_settings_come_from_the_environment(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESCYCLE_SENDING__TRANSPORT", "smtp")
    monkeypatch.setenv("SALESCYCLE_SENDING__TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("SALESCYCLE_SENDING__SMTP__HOST", "mx.internal")
    monkeypatch.setenv("SALESCYCLE_SENDING__SMTP__PORT", "587")
    monkeypatch.setenv("SALESCYCLE_SENDING__SMTP__STARTTLS", "true")
    monkeypatch.setenv("SALESCYCLE_SENDING__SMTP__USERNAME", "rita")
    monkeypatch.setenv("SALESCYCLE_SMTP_PASSWORD", "pa55word")
    monkeypatch.setenv("SALESCYCLE_SENDING__SENDGRID_CATEGORIES", '["outreach", "nordics"]')

    settings = load_settings(Workspace(workspace))

    sending = settings.sending
    assert sending.transport == "smtp"
    assert sending.timeout_seconds == 2.5
    assert (sending.smtp.host, sending.smtp.port, sending.smtp.starttls) == (
        "mx.internal",
        587,
        True,
    )
    assert sending.smtp.username == "rita"
    assert sending.sendgrid_categories == ["outreach", "nordics"]
    assert sending.domain == "mail.salescycle-demo.example"  # the file still shows through
    assert settings.smtp_password is not None
    assert settings.smtp_password.get_secret_value() == "pa55word"
    assert "pa55word" not in repr(settings)
    assert isinstance(make_transport(settings, workspace), SmtpTransport)


def test_an_unknown_transport_in_the_environment_names_the_variable_and_the_choices(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESCYCLE_SENDING__TRANSPORT", "pigeon")

    with pytest.raises(ConfigurationError) as refused:
        load_settings(Workspace(workspace))

    assert "SALESCYCLE_SENDING__TRANSPORT" in str(refused.value)
    assert "'outbox', 'smtp' or 'sendgrid'" in str(refused.value)


def _append_settings(workspace: Path, text: str) -> None:
    path = workspace / "config" / "settings.yaml"
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_the_smtp_password_in_the_file_is_refused(workspace: Path) -> None:
    _append_settings(workspace, "smtp_password: hunter2\n")

    with pytest.raises(WorkspaceError) as refused:
        load_settings(Workspace(workspace))

    [problem] = refused.value.problems
    assert problem.path == "config/settings.yaml"
    assert "SALESCYCLE_SMTP_PASSWORD" in problem.message


@pytest.mark.parametrize(
    ("smtp", "says"),
    [
        ("{starttls: true, ssl: true}", "starttls and ssl exclude each other"),
        ("{dkim_selector: sc2026}", "missing: dkim_domain, dkim_key_file"),
    ],
    ids=["starttls-and-ssl", "half-of-dkim"],
)
def test_inconsistent_smtp_settings_are_reported_in_the_file(
    workspace: Path, smtp: str, says: str
) -> None:
    path = workspace / "config" / "settings.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("sending:\n", f"sending:\n  smtp: {smtp}\n", 1), encoding="utf-8")

    with pytest.raises(WorkspaceError) as refused:
        load_settings(Workspace(workspace))

    [problem] = refused.value.problems
    assert problem.path == "config/settings.yaml"
    assert problem.line is not None
    assert says in problem.message
