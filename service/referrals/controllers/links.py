"""``/h/{token}``: a referral's handout opened by its short link (its QR code), without an
account, on the patient's phone.

The link acts: the open is audited with the link as actor (its token's hash). A revoked or
expired link answers 410 in the handout's language, an unknown one 404; nothing is cached,
indexed or sent on as a referrer.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import PathParameter

from service.platform.audit import audit_event, audited, mark_written, note
from service.platform.auth import PUBLIC
from service.platform.credentials import Principal
from service.platform.database import Database, utcnow
from service.platform.i18n import wording
from service.platform.origin import public_origin
from service.platform.secret_links import LINK_PATTERN, url
from service.platform.sessions import hash_secret
from service.referrals.handout import (
    GONE_TEMPLATE,
    LINK_HEADERS,
    TEMPLATE,
    page_context,
    reader_wording,
    render,
)
from service.referrals.service import handout_by_link


def _page(html: str, status_code: int, language: str) -> Response[str]:
    return Response(
        html,
        status_code=status_code,
        media_type="text/html; charset=utf-8",
        headers={**LINK_HEADERS, "Content-Language": language},
    )


class HandoutLinkController(Controller):
    path = "/h"
    include_in_schema = False
    opt = PUBLIC

    @get("/{token:str}", opt=audited("read", "Referral"))
    async def open(
        self,
        request: Request[Any, Any, Any],
        token: Annotated[str, PathParameter(description="The short link's token")],
        db: NamedDependency[Database],
    ) -> Response[str]:
        linked = await handout_by_link(db, token) if re.fullmatch(LINK_PATTERN, token) else None
        if linked is None:
            words = wording(None)
            html = render(request, GONE_TEMPLATE, {**words.context(), "found": False})
            return _page(html, 404, words.language)
        link, handout = linked.link, linked.handout
        words = reader_wording(handout, None)
        if link.gone:
            html = render(request, GONE_TEMPLATE, {**words.context(), "found": True})
            status_code = 410
        else:
            link_url = url(public_origin(request), "handout", token)
            html = render(
                request,
                TEMPLATE,
                page_context(handout, words, link_url=link_url, expires_at=link.expires_at),
            )
            status_code = 200
        # The link is the actor: its clinic's audit trail records this open.
        request.scope["user"] = Principal(
            client_id=None,
            clinic_id=link.clinic_id,
            scopes=frozenset(),
            link_hash=hash_secret(token),
        )
        note(request, link.subject_id, linked.patient_id)
        event = audit_event(request, status_code, utcnow())
        assert event is not None
        await request.app.state.audit_writer.write(link.clinic_id, event)
        mark_written(request)
        return _page(html, status_code, words.language)
