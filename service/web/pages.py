"""What every page of the clinician app shares: the templates and static assets shipped
with the package, the controller base that puts CSRF protection on every form, and the
context every template gets (the signed-in user, the CSRF token, the clinic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Controller, Request
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler

from service.platform.sessions import CSRF_FIELD, AppUser, require_csrf

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
PUBLIC = {"exclude_from_auth": True}


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """The pages' templates, with Jinja's ``i18n`` extension: a page in the patient's
    language takes :meth:`service.platform.i18n.Wording.context` into its context, and any
    other renders the source text (English)."""

    def with_i18n(engine: JinjaTemplateEngine) -> None:
        engine.engine.add_extension("jinja2.ext.i18n")
        engine.engine.install_null_translations(newstyle=True)  # type: ignore[attr-defined]

    return TemplateConfig(
        directory=TEMPLATES, engine=JinjaTemplateEngine, engine_callback=with_i18n
    )


def static_files() -> ControllerRouterHandler:
    """``/app/static``: every stylesheet, script and image the pages use, from the package."""
    return create_static_files_router(
        path="/app/static",
        directories=[STATIC],
        opt=PUBLIC,
        include_in_schema=False,
        cache_control=None,
    )


class AppController(Controller):
    """The base of every /app controller: not in the API's OpenAPI document, and every
    route that changes something checks the form's CSRF token."""

    include_in_schema = False
    guards = [require_csrf]


def app_user(request: Request[Any, Any, Any]) -> AppUser | None:
    user = request.scope.get("auth")
    return user if isinstance(user, AppUser) else None


def page(
    request: Request[Any, Any, Any], template: str, status_code: int = 200, **context: Any
) -> Template:
    """The template with what the layout needs: the user, the CSRF field, where we are."""
    user = app_user(request)
    return Template(
        template_name=template,
        status_code=status_code,
        context={
            "user": user,
            "csrf_field": CSRF_FIELD,
            "csrf_token": user.csrf_token if user else "",
            "path": request.url.path,
            **context,
        },
    )


def see_other(path: str) -> Redirect:
    """After a form: to the page that shows its outcome (Post/Redirect/Get)."""
    return Redirect(path=path, status_code=303)
