"""Messages' use cases: send a referral's handout link to the patient, by SMS or email, and
list what was sent.

The patient's phone number or address comes with the request, goes to the channel's
sender, and is kept nowhere. A patient who asked not to be contacted gets nothing: the
message is recorded ``suppressed`` and no sender is called.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy.engine import Row

from service.messages.model import (
    Channel,
    Email,
    HandoutFacts,
    Sms,
    Status,
    TooLong,
    compose_email,
    compose_sms,
)
from service.messages.outbox import SETTING, Outbox, SendFailed
from service.messages.repository import MessageStore
from service.patients.model import PatientProfile
from service.platform import secret_links
from service.platform.caller import Caller
from service.platform.database import new_id, utcnow
from service.platform.i18n import wording
from service.platform.lookup import Conflict, Fault, found
from service.referrals.model import referral_code
from service.referrals.service import issue_handout_link


class Message(msgspec.Struct):
    """A message sent (or not) to a referral's patient: never the phone number or address."""

    id: uuid.UUID
    channel: Channel
    status: Status
    """sent (the channel took it), failed (it did not: see ``error``) or suppressed (the
    patient asked not to be contacted: nothing was sent)."""
    segments: int | None
    """The SMS segments the text took (null for email and for a suppressed message)."""
    error: str | None
    """Why sending failed, naming no recipient."""
    created_at: datetime
    sent_at: datetime | None


def _message(row: Row[Any]) -> Message:
    return Message(
        id=row.id,
        channel=Channel(row.channel),
        status=Status(row.status),
        segments=row.segments,
        error=row.error,
        created_at=row.created_at,
        sent_at=row.sent_at,
    )


class Messages:
    """A clinic's messages to its patients, handed to the outbox's senders."""

    def __init__(self, caller: Caller, outbox: Outbox) -> None:
        self.caller = caller
        self.outbox = outbox

    async def send_handout_link(
        self,
        referral_id: str,
        channel: Channel,
        to: str,
        *,
        public_base: str,
        link_lifetime: timedelta,
        seen: Callable[[str], None] = lambda patient_id: None,
    ) -> Message:
        """Issue the referral's handout link and send it to ``to`` (checked for the channel
        by the caller); ``seen`` learns the patient. A channel with no sender is a
        :class:`Conflict` and nothing is sent; a patient not to be contacted is sent
        nothing (``suppressed``); a sender's failure is recorded ``failed``."""
        sender = self.outbox.senders.get(channel)
        async with self.caller.transaction(MessageStore) as store:
            recipient = found(await store.recipient(referral_id), "referral", referral_id)
            seen(recipient.patient_id)
            if sender is None:
                raise Conflict(
                    f"no sender for {channel.value}: set {SETTING[channel]}",
                    [Fault("channel", f"no sender for {channel.value}", "no_sender")],
                )
            profile = msgspec.convert(recipient.profile, PatientProfile)
            if profile.do_not_contact:
                row = await store.insert_message(
                    **self._record(referral_id, channel, Status.SUPPRESSED, None, None)
                )
                return _message(row)
            token = await issue_handout_link(
                store.conn, self.caller.clinic_id, referral_id, link_lifetime
            )
        facts = HandoutFacts(
            clinic=recipient.clinic_name,
            service=recipient.service_name,
            code=referral_code(referral_id),
            url=secret_links.url(public_base, "handout", token),
        )
        words = wording(profile.languages[0] if profile.languages else None)
        message: Sms | Email
        segments: int | None = None
        error: str | None = None
        try:
            if channel is Channel.SMS:
                message = compose_sms(words, facts)
                segments = message.segments
            else:
                message = compose_email(words, facts)
            await sender.send(to, message)
        except SendFailed as exc:
            status, error = Status.FAILED, exc.reason
        except TooLong as exc:
            status, error = Status.FAILED, str(exc)
        else:
            status = Status.SENT
        async with self.caller.transaction(MessageStore) as store:
            row = await store.insert_message(
                **self._record(referral_id, channel, status, segments, error)
            )
        return _message(row)

    def _record(
        self,
        referral_id: str,
        channel: Channel,
        status: Status,
        segments: int | None,
        error: str | None,
    ) -> dict[str, object]:
        now = utcnow()
        return {
            "id": new_id(),
            "referral_id": referral_id,
            "channel": channel.value,
            "status": status.value,
            "segments": segments,
            "error": error,
            "created_at": now,
            "sent_at": now if status is Status.SENT else None,
        }

    async def of_referral(
        self, referral_id: str, seen: Callable[[str], None] = lambda patient_id: None
    ) -> list[Message]:
        """The referral's messages, newest first."""
        async with self.caller.transaction(MessageStore) as store:
            patient_id = found(await store.referral_patient(referral_id), "referral", referral_id)
            seen(patient_id)
            return [_message(row) for row in await store.messages_of(referral_id)]
