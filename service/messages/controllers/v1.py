"""Sending a referral's handout link to the patient, by SMS or email, and the messages sent."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter

from service.messages.controllers import provide_messages
from service.messages.model import Channel, checked_recipient
from service.messages.service import Message, Messages
from service.platform.audit import audited, note
from service.platform.auth import scoped
from service.platform.body import decode
from service.platform.credentials import Principal
from service.platform.documented import documented
from service.platform.errors import ApiError, FieldError
from service.platform.origin import public_origin

ReferralId = Annotated[
    str, PathParameter(pattern=r"^[0-9a-f-]{36}$", description="Referral id (a UUID)")
]


class MessageRequest(msgspec.Struct, forbid_unknown_fields=True):
    channel: Channel
    to: Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
    """The patient's phone number (E.164, for sms) or email address: used to send this
    message, never stored nor echoed."""


class MessageList(msgspec.Struct):
    items: list[Message]
    """Newest first."""


class MessageController(Controller):
    path = "/v1/referrals/{referral_id:str}/messages"
    tags = ["referrals"]
    dependencies = {"messages": Provide(provide_messages, sync_to_thread=False)}

    @post(
        operation_id="send_handout_link",
        summary="Send the referral's handout link to the patient by SMS or email",
        description=(
            "Issues a handout link and sends it now through the channel's sender: an SMS of "
            "at most two segments or an email, in the patient's language, naming the clinic, "
            "the service and the referral's code (nothing about the patient). `to` is used "
            "to send and kept nowhere. A patient whose profile says `do_not_contact` is sent "
            "nothing (status `suppressed`); a sender's failure is status `failed` with the "
            "reason. A channel with no sender configured answers 409."
        ),
        opt={
            **scoped("referrals:write"),
            **audited("create", "Message"),
            **documented(
                errors={404, 409, 422},
                request=MessageRequest,
                example={"channel": "sms", "to": "+447700900000"},
            ),
        },
    )
    async def send(
        self,
        request: Request[Principal, Any, Any],
        referral_id: ReferralId,
        messages: NamedDependency[Messages],
    ) -> Response[Message]:
        data = await decode(request, MessageRequest)
        try:
            checked_recipient(data.channel, data.to)
        except ValueError as exc:
            raise ApiError(
                422,
                f"`to` is not {exc} for {data.channel.value}",
                [FieldError("to", f"expected {exc}", "invalid")],
            ) from None
        settings = request.app.state.settings
        message = await messages.send_handout_link(
            referral_id,
            data.channel,
            data.to,
            public_base=public_origin(request),
            link_lifetime=timedelta(days=settings.handout_link_days),
            seen=lambda patient_id: note(request, referral_id, patient_id),
        )
        return Response(message, status_code=201)

    @get(
        operation_id="list_messages",
        summary="The messages sent to the referral's patient, newest first",
        opt={**scoped("referrals:read"), **audited("read", "Message")},
    )
    async def of_referral(
        self,
        request: Request[Principal, Any, Any],
        referral_id: ReferralId,
        messages: NamedDependency[Messages],
    ) -> MessageList:
        items = await messages.of_referral(
            referral_id, seen=lambda patient_id: note(request, referral_id, patient_id)
        )
        return MessageList(items)
