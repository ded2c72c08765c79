"""The clinician app's "Send the handout link" form, on the referral's page: the channel and
the patient's phone number or email address (used to send, kept nowhere), then back to the
referral's page, which shows what came of it (Post/Redirect/Get)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from litestar import Request, post
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter
from litestar.response import Redirect, Template

from service.messages.controllers import provide_messages
from service.messages.model import Channel, checked_recipient
from service.messages.service import Messages
from service.platform.audit import audited, note
from service.platform.auth import scoped
from service.platform.lookup import Conflict
from service.platform.origin import public_origin
from service.web.pages import AppController, page, see_other

ReferralId = Annotated[str, PathParameter(pattern=r"^[0-9a-f-]{36}$")]
CHANNEL_WORDS = {Channel.SMS: "SMS", Channel.EMAIL: "email"}
TO_WORDS = {
    Channel.SMS: "Enter a mobile number with its country code, such as +447700900000",
    Channel.EMAIL: "Enter an email address, such as name@example.org",
}


class MessagePages(AppController):
    path = "/app"
    dependencies = {"messages": Provide(provide_messages, sync_to_thread=False)}

    @post(
        "/referrals/{referral_id:str}/messages",
        opt={**scoped("referrals:write"), **audited("create", "Message")},
        status_code=303,
    )
    async def send(
        self,
        request: Request[Any, Any, Any],
        referral_id: ReferralId,
        messages: NamedDependency[Messages],
    ) -> Template | Redirect:
        form = await request.form()
        chosen, to = form.get("channel"), form.get("to")
        to = to.strip() if isinstance(to, str) else ""
        channel = Channel(chosen) if chosen in {c.value for c in Channel} else None
        problem = None
        if channel is None:
            problem = ("channel-sms", "How to send", "Choose SMS or email")
        else:
            try:
                checked_recipient(channel, to)
            except ValueError:
                problem = ("to", "Phone number or email address", TO_WORDS[channel])
        if problem is not None:
            return page(
                request,
                "messages/send.html",
                status_code=422,
                referral_id=referral_id,
                channels=[c for c in Channel if c in messages.outbox.senders],
                channel=channel,
                to=to,
                problem=problem,
            )
        assert channel is not None
        settings = request.app.state.settings
        try:
            message = await messages.send_handout_link(
                referral_id,
                channel,
                to,
                public_base=public_origin(request),
                link_lifetime=timedelta(days=settings.handout_link_days),
                seen=lambda patient_id: note(request, referral_id, patient_id),
            )
        except Conflict as exc:
            return page(
                request,
                "referrals/refused.html",
                status_code=409,
                title=f"No way to send by {CHANNEL_WORDS[channel]}",
                detail=f"Nothing was sent: {exc.detail}.",
                back=f"/app/referrals/{referral_id}",
            )
        return see_other(f"/app/referrals/{referral_id}?message={message.id}#handout-link")
