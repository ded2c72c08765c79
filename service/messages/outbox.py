"""The outbox: one sender per channel, as the settings configure them. A sender hands one
message to its channel now (no queue that would have to keep the address) and either
returns, or raises :class:`SendFailed` with a reason fit to store: it never names the
recipient, whatever the server said.

- email: :class:`SmtpSender`, an SMTP server (``smtp://`` with STARTTLS, ``smtps://``)
- sms: :class:`WebhookSender`, an SMS gateway's webhook taking ``{"to", "body"}`` as JSON,
  signed ``X-Belong-Signature: sha256=<HMAC-SHA256 of the body, hex>``
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol
from urllib.parse import urlsplit

import aiosmtplib
import httpx
import msgspec

from service.messages.model import Channel, Email, Sms
from service.settings import Settings
from service.web.oidc import SecretUnavailable, resolve_secret

SIGNATURE_HEADER = "X-Belong-Signature"


class SendFailed(Exception):
    """The channel did not take the message; ``reason`` names no recipient."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Sender(Protocol):
    async def send(self, to: str, message: Sms | Email) -> None: ...


@dataclass(frozen=True, slots=True)
class SmtpSender:
    url: str
    starttls: bool
    mail_from: str
    user: str | None
    password_ref: str | None
    timeout_s: float

    def envelope(self, to: str, email: Email) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = to
        message["Subject"] = email.subject
        message["Message-ID"] = make_msgid(domain=self.mail_from.rpartition("@")[2].strip("> "))
        message.set_content(email.text)
        message.add_alternative(email.html, subtype="html")
        return message

    async def send(self, to: str, message: Sms | Email) -> None:
        assert isinstance(message, Email)
        parts = urlsplit(self.url)
        tls = parts.scheme == "smtps"
        try:
            password = None if self.password_ref is None else resolve_secret(self.password_ref)
        except SecretUnavailable as exc:
            raise SendFailed(f"the SMTP password is unavailable: {exc}") from None
        try:
            await aiosmtplib.send(
                self.envelope(to, message),
                hostname=parts.hostname,
                port=parts.port or (465 if tls else 587),
                use_tls=tls,
                start_tls=False if tls else self.starttls,
                username=self.user,
                password=password,
                timeout=self.timeout_s,
            )
        except aiosmtplib.SMTPResponseException as exc:
            raise SendFailed(f"the mail server refused the message ({exc.code})") from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({refusal.code for refusal in exc.recipients})
            raise SendFailed(f"the mail server refused the recipient ({codes[0]})") from None
        except (TimeoutError, aiosmtplib.SMTPTimeoutError):
            raise SendFailed(f"the mail server did not answer in {self.timeout_s:g} s") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SendFailed(
                f"the mail server could not be reached ({type(exc).__name__})"
            ) from None


@dataclass(frozen=True, slots=True)
class WebhookSender:
    url: str
    secret_ref: str
    timeout_s: float

    async def send(self, to: str, message: Sms | Email) -> None:
        assert isinstance(message, Sms)
        try:
            key = resolve_secret(self.secret_ref).encode()
        except SecretUnavailable as exc:
            raise SendFailed(f"the SMS webhook's secret is unavailable: {exc}") from None
        body = msgspec.json.encode({"to": to, "body": message.text})
        signature = hmac.new(key, body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: f"sha256={signature}"}
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                answer = await client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise SendFailed(f"the SMS gateway did not answer in {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise SendFailed(
                f"the SMS gateway could not be reached ({type(exc).__name__})"
            ) from None
        if not answer.is_success:
            raise SendFailed(f"the SMS gateway answered {answer.status_code}")


SETTING = {Channel.SMS: "BELONG_SMS_WEBHOOK_URL", Channel.EMAIL: "BELONG_SMTP_URL"}
"""The setting that gives each channel its sender."""


@dataclass(frozen=True, slots=True)
class Outbox:
    senders: dict[Channel, Sender]

    @classmethod
    def of(cls, settings: Settings) -> Outbox:
        senders: dict[Channel, Sender] = {}
        if settings.smtp_url is not None:
            assert settings.mail_from is not None  # the settings require it
            senders[Channel.EMAIL] = SmtpSender(
                settings.smtp_url,
                settings.smtp_starttls,
                settings.mail_from,
                settings.smtp_user,
                settings.smtp_password_ref,
                settings.message_timeout_s,
            )
        if settings.sms_webhook_url is not None:
            assert settings.sms_webhook_secret_ref is not None  # the settings require it
            senders[Channel.SMS] = WebhookSender(
                settings.sms_webhook_url,
                settings.sms_webhook_secret_ref,
                settings.message_timeout_s,
            )
        return cls(senders)
