"""`belong users`: the clinic's users of the clinician app and their sign-in links;
`belong ehrs`: the EHRs that open the app by SMART App Launch."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from service.platform.database import Database
from service.platform.embedded import database_url
from service.platform.sessions import ROLES
from service.web.launch import CALLBACK_PATH, LAUNCH_PATH, Ehrs
from service.web.users import SIGN_IN_LINK_MINUTES, SIGN_IN_LINK_PATH, Users

R = TypeVar("R", Users, Ehrs)
DEFAULT_ORIGIN = "http://127.0.0.1:8000"


def _refusing(work: Callable[[R], Awaitable[int]], registry: Callable[[Database], R]) -> int:
    """``work`` on the registry (the clinic's users, or its EHRs) of BELONG_DATABASE_URL;
    a refused change prints why and exits 2."""

    async def run() -> int:
        db = Database(database_url(os.environ.get("BELONG_DATABASE_URL")))
        try:
            return await work(registry(db))
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except (LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _add(args: argparse.Namespace) -> int:
    async def add(users: Users) -> int:
        user = await users.add(args.clinic, args.name, args.role, if_missing=args.if_missing)
        print(f"clinic {args.clinic!r}: user {user.name!r} ({user.role}), id {user.id}")
        return 0

    return _refusing(add, Users)


def _list(args: argparse.Namespace) -> int:
    async def show(users: Users) -> int:
        for user in await users.list(args.clinic):
            state = "disabled" if user.disabled_at else "active"
            print(f"{user.id}\t{user.name}\t{user.role}\t{state}")
        return 0

    return _refusing(show, Users)


def _disable(args: argparse.Namespace) -> int:
    async def disable(users: Users) -> int:
        user = await users.disable(args.clinic, args.name)
        print(f"clinic {args.clinic!r}: user {user.name!r} disabled; their sessions have ended")
        return 0

    return _refusing(disable, Users)


def _link(args: argparse.Namespace) -> int:
    async def link(users: Users) -> int:
        token = await users.link(args.clinic, args.user, minutes=args.minutes)
        origin = (args.origin or os.environ.get("BELONG_PUBLIC_BASE_URL") or DEFAULT_ORIGIN).rstrip(
            "/"
        )
        print(
            f"Sign-in link for {args.user!r} of {args.clinic!r} "
            f"(single use, valid {args.minutes} minutes):"
        )
        print(f"{origin}{SIGN_IN_LINK_PATH}{token}")
        return 0

    return _refusing(link, Users)


def _ehrs_add(args: argparse.Namespace) -> int:
    async def add(registry: Ehrs) -> int:
        ehr = await registry.add(
            args.clinic,
            iss=args.iss,
            client_id=args.client_id,
            secret_ref=args.secret_ref,
            role=args.role,
            patient_identifier_system=args.patient_identifier_system,
            frame_origins=args.frame_origin,
        )
        origin = (os.environ.get("BELONG_PUBLIC_BASE_URL") or DEFAULT_ORIGIN).rstrip("/")
        print(f"clinic {args.clinic!r}: EHR {ehr.iss} (client {ehr.client_id!r}, {ehr.role})")
        print(f"register Belong there with launch URL {origin}{LAUNCH_PATH}")
        print(f"and redirect URI {origin}{CALLBACK_PATH}")
        return 0

    return _refusing(add, Ehrs)


def _ehrs_list(args: argparse.Namespace) -> int:
    async def show(registry: Ehrs) -> int:
        for ehr in await registry.list(args.clinic):
            system = ehr.patient_identifier_system or "-"
            print(f"{ehr.id}\t{ehr.iss}\t{ehr.client_id}\t{ehr.role}\t{system}")
        return 0

    return _refusing(show, Ehrs)


def _ehrs_remove(args: argparse.Namespace) -> int:
    async def remove(registry: Ehrs) -> int:
        ended = await registry.remove(args.clinic, args.iss)
        print(f"clinic {args.clinic!r}: EHR {args.iss} removed; {ended} of its sessions ended")
        return 0

    return _refusing(remove, Ehrs)


def add_ehr_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ehrs = commands.add_parser("ehrs", help="EHRs that open the clinician app (SMART launch)")
    actions = ehrs.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register a clinic's EHR, or change its registration")
    add.add_argument("--clinic", required=True)
    add.add_argument("--iss", required=True, help="the EHR's FHIR base URL, as it sends iss")
    add.add_argument("--client-id", required=True, help="Belong's client id at the EHR")
    add.add_argument(
        "--secret-ref",
        help="env:VARIABLE or file:/path holding the client secret (omit for a public client)",
    )
    add.add_argument("--role", choices=ROLES, default="clinician", help="the EHR's users' role")
    add.add_argument(
        "--patient-identifier-system",
        help="the identifier system of the EHR's Patient that holds Belong's patient id "
        "(default: the EHR's patient id is Belong's)",
    )
    add.add_argument(
        "--frame-origin",
        action="append",
        default=[],
        help="an origin that shows the app in a frame, besides the iss's (repeatable)",
    )
    add.set_defaults(run=_ehrs_add)
    listing = actions.add_parser("list", help="list a clinic's EHRs")
    listing.add_argument("--clinic", required=True)
    listing.set_defaults(run=_ehrs_list)
    remove = actions.add_parser("remove", help="unregister an EHR; ends the sessions it opened")
    remove.add_argument("--clinic", required=True)
    remove.add_argument("--iss", required=True)
    remove.set_defaults(run=_ehrs_remove)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = commands.add_parser("users", help="users of the clinician app and sign-in links")
    actions = users.add_subparsers(dest="action", required=True)

    add = actions.add_parser("add", help="add a user to a clinic")
    add.add_argument("--clinic", required=True)
    add.add_argument("--name", required=True, help="how the clinic knows them (unique in it)")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument(
        "--if-missing", action="store_true", help="succeed, changing nothing, if the user exists"
    )
    add.set_defaults(run=_add)

    listing = actions.add_parser("list", help="list a clinic's users")
    listing.add_argument("--clinic", required=True)
    listing.set_defaults(run=_list)

    disable = actions.add_parser("disable", help="stop a user signing in; ends their sessions")
    disable.add_argument("--clinic", required=True)
    disable.add_argument("--name", required=True)
    disable.set_defaults(run=_disable)

    link = actions.add_parser(
        "link", help="print a single-use sign-in link for a user (for clinics without an IdP)"
    )
    link.add_argument("--clinic", required=True)
    link.add_argument("--user", required=True, help="the user's name")
    link.add_argument(
        "--minutes", type=int, default=SIGN_IN_LINK_MINUTES, choices=range(1, 61), metavar="1-60"
    )
    link.add_argument(
        "--origin",
        help=f"the app's public origin (default: BELONG_PUBLIC_BASE_URL, else {DEFAULT_ORIGIN})",
    )
    link.set_defaults(run=_link)
