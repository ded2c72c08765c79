"""The senders' settings: each channel's sender needs what it sends with, a secret only as
a reference, and a phone number never goes to a webhook over plain http off the loopback."""

from __future__ import annotations

import pytest

from service.messages.model import Channel
from service.messages.outbox import Outbox, SmtpSender, WebhookSender
from service.settings import Settings

WEBHOOK = {"BELONG_SMS_WEBHOOK_SECRET_REF": "file:/run/secrets/sms"}
SMTP = {"BELONG_MAIL_FROM": "Belong <no-reply@clinic.example.org>"}


def test_unset_there_is_no_sender() -> None:
    assert Outbox.of(Settings()).senders == {}


def test_each_channel_gets_its_sender_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "BELONG_SMTP_URL": "smtps://mail.example.org:465",
            "BELONG_SMTP_STARTTLS": "false",
            "BELONG_SMTP_USER": "belong",
            "BELONG_SMTP_PASSWORD_REF": "env:SMTP_PASSWORD",
            "BELONG_SMS_WEBHOOK_URL": "https://sms.example.org/belong",
            "BELONG_MESSAGE_TIMEOUT_S": "5",
            **SMTP,
            **WEBHOOK,
        }
    )
    senders = Outbox.of(settings).senders
    assert senders[Channel.EMAIL] == SmtpSender(
        "smtps://mail.example.org:465",
        False,
        SMTP["BELONG_MAIL_FROM"],
        "belong",
        "env:SMTP_PASSWORD",
        5.0,
    )
    assert senders[Channel.SMS] == WebhookSender(
        "https://sms.example.org/belong", "file:/run/secrets/sms", 5.0
    )


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"BELONG_SMTP_URL": "smtp://mail.example.org:587"}, "mail_from"),
        ({"BELONG_SMTP_URL": "smtp://user:pw@mail.example.org", **SMTP}, "smtp_url"),
        ({"BELONG_SMTP_URL": "http://mail.example.org", **SMTP}, "smtp_url"),
        ({"BELONG_SMTP_PASSWORD_REF": "hunter2"}, "smtp_password_ref"),
        ({"BELONG_SMS_WEBHOOK_URL": "https://sms.example.org/belong"}, "sms_webhook_secret_ref"),
        ({"BELONG_SMS_WEBHOOK_URL": "http://sms.example.org/belong", **WEBHOOK}, "sms_webhook_url"),
        ({"BELONG_SMS_WEBHOOK_SECRET_REF": "env:"}, "sms_webhook_secret_ref"),
        ({"BELONG_MESSAGE_TIMEOUT_S": "0"}, "message_timeout_s"),
    ],
)
def test_a_sender_setting_that_cannot_work_stops_start_up_naming_it(
    environment: dict[str, str], named: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        Settings.from_env(environment)
    assert named in str(stopped.value)
    assert "hunter2" not in str(stopped.value) and "pw@" not in str(stopped.value)


def test_plain_http_is_for_a_webhook_on_the_loopback_only() -> None:
    for url in ("http://127.0.0.1:9000/sms", "http://localhost/sms", "http://[::1]:80/sms"):
        assert Settings(sms_webhook_url=url, sms_webhook_secret_ref="env:KEY").sms_webhook_url
