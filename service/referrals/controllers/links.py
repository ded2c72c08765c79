"""``/h/{token}``: a referral's handout opened by its short link (its QR code), without an
account, on the patient's phone.

The link acts: :class:`SecretLinkMiddleware` resolves it, makes it the request's principal
and sets the link page's headers (nothing cached, indexed or sent on as a referrer); the
audit middleware records each open with the link as actor. A revoked or expired link
answers 410 in the handout's language (that refusal audited too), an unknown one 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import PathParameter

from service.platform.audit import audited, note
from service.platform.auth import PUBLIC
from service.platform.database import Database
from service.platform.i18n import wording
from service.platform.origin import public_origin
from service.platform.secret_links import link_principal, presented_link, url
from service.referrals.handout import (
    GONE_TEMPLATE,
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
        headers={"Content-Language": language},
    )


class HandoutLinkController(Controller):
    path = "/h"
    include_in_schema = False

    @get(
        "/{token:str}",
        opt={**PUBLIC, "secret_link": "handout", **audited("read", "Referral")},
    )
    async def open(
        self,
        request: Request[Any, Any, Any],
        token: Annotated[str, PathParameter(description="The short link's token")],
        db: NamedDependency[Database],
    ) -> Response[str]:
        presented = presented_link(request.scope)
        link = presented.link if presented else None
        linked = await handout_by_link(db, link) if link is not None else None
        if link is None or linked is None:
            words = wording(None)
            html = render(request, GONE_TEMPLATE, {**words.context(), "found": False})
            return _page(html, 404, words.language)
        handout = linked.handout
        words = reader_wording(handout, None)
        if link.gone:
            # The link stays the actor of its refused open, in its clinic's audit trail.
            request.scope["user"] = link_principal(token, link)
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
        note(request, link.subject_id, linked.patient_id)
        return _page(html, status_code, words.language)
