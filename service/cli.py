"""The ``belong`` command line."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from service.directory.importing import OnError
from service.platform.clinics import DEFAULT_LANGUAGES, Clinic, UnknownClinic
from service.platform.credentials import SCOPES
from service.settings import PROJECT_ROOT
from service.web.cli import add_commands as add_user_commands
from service.web.cli import add_ehr_commands

T = TypeVar("T")

if TYPE_CHECKING:
    from service.platform.database import Database

INSTRUMENT_SCHEMA = PROJECT_ROOT / "schemas" / "instrument.schema.json"
OPENAPI_DIR = PROJECT_ROOT / "openapi"


def asgi_app() -> Any:
    """What each granian worker serves: JSON logging, then the app from the environment."""
    from service.app import create_app
    from service.platform.observability import configure_logging
    from service.settings import Settings

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    return create_app(settings)


def _database_url() -> str:
    """BELONG_DATABASE_URL, or the embedded PostgreSQL's (started if it is not running)."""
    from service.platform.embedded import database_url
    from service.settings import Settings

    return database_url(Settings.from_env().database_url)


def _serve(args: argparse.Namespace) -> int:
    import tempfile

    from granian.constants import Interfaces
    from granian.server import Server

    from service.settings import Settings

    # Fail here, with the setting named, rather than in every worker.
    settings = Settings.from_env()
    if settings.public_base_url is None and not _is_loopback(args.host):
        print(
            f"warning: serving on {args.host} without BELONG_PUBLIC_BASE_URL: absolute URLs "
            "and the aud required of SMART and CDS Hooks JWTs name the listening address "
            "(or what a BELONG_TRUSTED_PROXIES proxy forwards); set it to the external origin",
            file=sys.stderr,
            flush=True,
        )
    # The workers read the URL from the environment: the embedded server is started once.
    os.environ["BELONG_DATABASE_URL"] = _database_url()
    # One metrics store shared by the workers (prometheus_client multiprocess mode).
    metrics_dir = tempfile.mkdtemp(prefix="belong-metrics-")
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
    server = Server(
        "service.cli:asgi_app",
        factory=True,
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        workers_kill_timeout=args.graceful_timeout,
    )
    server.serve()
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _instrument_schema_text() -> str:
    from service.instruments.model import json_schema

    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def _instruments_schema(args: argparse.Namespace) -> int:
    Path(args.output).write_text(_instrument_schema_text(), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


def _instruments_check(args: argparse.Namespace) -> int:
    from service.instruments.loader import load_catalog
    from service.instruments.model import InstrumentError
    from service.settings import Settings

    try:
        catalog = load_catalog(Path(Settings.from_env().instruments_dir))
    except InstrumentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for instrument in catalog.values():
        low, high = instrument.score_range()
        print(f"{instrument.id:24} {len(instrument.link_ids):3} items  {low:g}..{high:g}")
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from service.platform.migrate import upgrade

    upgrade(_database_url(), args.revision)
    print(f"database at {args.revision}")
    return 0


def _run(work: Callable[[Database], Awaitable[T]]) -> T:
    """``work(db)`` on BELONG_DATABASE_URL."""
    import asyncio

    from service.platform.database import Database

    async def run() -> T:
        db = Database(_database_url())
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


def _refusing(work: Callable[[Database], Awaitable[int]]) -> int:
    """:func:`_run`, printing what the use case refuses (:class:`LookupError`,
    :class:`ValueError`): exit status 2."""
    try:
        return _run(work)
    except (LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _refuse_unknown_clinic(exc: UnknownClinic) -> int:
    print(
        f"error: {exc}; create it first with `belong clinics create --name NAME "
        "[--language CODE ...]`, or pass --create-clinic",
        file=sys.stderr,
    )
    return 2


def _clinic_line(clinic: Clinic) -> str:
    return f"clinic {clinic.name!r} ({clinic.id}), languages {', '.join(clinic.languages)}"


def _clinics_create(args: argparse.Namespace) -> int:
    from service.platform.clinics import ClinicExists, Clinics

    languages = args.language or list(DEFAULT_LANGUAGES)
    try:
        clinic, created = _run(
            lambda db: Clinics(db).create(args.name, languages, if_missing=args.if_missing)
        )
    except ClinicExists as exc:
        print(f"error: {exc} (belong clinics update changes its languages)", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(("created " if created else "exists already, unchanged: ") + _clinic_line(clinic))
    return 0


def _clinics_list(args: argparse.Namespace) -> int:
    from service.platform.clinics import Clinics

    rows = [
        (c.name, ", ".join(c.languages), f"{c.created_at:%Y-%m-%dT%H:%M:%SZ}", str(c.id))
        for c in _run(lambda db: Clinics(db).list())
    ]
    if not rows:
        print("no clinics yet: belong clinics create --name NAME", file=sys.stderr)
        return 0
    _print_table(("NAME", "LANGUAGES", "CREATED", "ID"), rows)
    return 0


def _clinics_update(args: argparse.Namespace) -> int:
    from service.platform.clinics import Clinics

    try:
        clinic = _run(lambda db: Clinics(db).update(args.name, args.language))
    except UnknownClinic as exc:
        print(f"error: {exc}; `belong clinics list` shows the clinics", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("updated " + _clinic_line(clinic))
    return 0


def _clinics_idp(args: argparse.Namespace) -> int:
    from service.web.oidc import DEFAULT_ROLE_MAP
    from service.web.oidc_sign_in import CALLBACK_PATH, IdentityProviders, parse_role_map

    try:
        role_map = parse_role_map(args.role_map) if args.role_map else DEFAULT_ROLE_MAP
    except ValueError as exc:
        print(f"error: --role-map: {exc}", file=sys.stderr)
        return 2

    async def configure(db: Database) -> int:
        provider = await IdentityProviders(db).configure(
            args.clinic,
            issuer=args.issuer,
            client_id=args.client_id,
            secret_ref=args.secret_ref,
            role_claim=args.role_claim,
            role_map=role_map,
            scopes=args.scope or (),
        )
        origin = (os.environ.get("BELONG_PUBLIC_BASE_URL") or "<public base URL>").rstrip("/")
        roles = ", ".join(f"{value}={role}" for value, role in provider.role_map.items())
        print(
            f"clinic {args.clinic!r} signs in through {provider.issuer} as client "
            f"{provider.client_id!r}; role claim {provider.role_claim!r} ({roles})"
        )
        print(f"Register this redirect URI at the provider: {origin}{CALLBACK_PATH}")
        return 0

    return _refusing(configure)


def _clients_create_with_keys(args: argparse.Namespace) -> int:
    """A system client that signs JWTs (SMART Backend Services or a CDS Hooks client)."""
    from service.systems.service import Systems

    try:
        jwks, jwks_url = _key_source(args.jwks)
    except (OSError, ValueError) as exc:
        print(f"error: {args.jwks}: {exc}", file=sys.stderr)
        return 2
    expires_at = _expiry(args)
    try:
        client = _run(
            lambda db: Systems(db).create(
                args.clinic,
                args.scope,
                args.name,
                issuer=args.issuer,
                jwks=jwks,
                jwks_url=jwks_url,
                expires_at=expires_at,
                create_clinic=args.create_clinic,
            )
        )
    except UnknownClinic as exc:
        return _refuse_unknown_clinic(exc)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"clinic {args.clinic!r}: client {client.principal.client_id} with scopes "
        f"{' '.join(sorted(client.principal.scopes))}, keys "
        f"{jwks_url or 'from ' + args.jwks}{_expiry_note(expires_at)}"
    )
    print("Its JWTs carry iss (and for SMART, sub and client_id):")
    print(client.issuer)
    return 0


def _clients_create(args: argparse.Namespace) -> int:
    if args.jwks is not None:
        return _clients_create_with_keys(args)
    if args.issuer is not None:
        print("error: --issuer goes with --jwks", file=sys.stderr)
        return 2

    from service.systems.service import Clients

    expires_at = _expiry(args)
    try:
        principal, token = _run(
            lambda db: Clients(db).create(
                args.clinic,
                args.scope,
                args.name,
                expires_at=expires_at,
                create_clinic=args.create_clinic,
            )
        )
    except UnknownClinic as exc:
        return _refuse_unknown_clinic(exc)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"clinic {args.clinic!r}: client {principal.client_id} with scopes "
        f"{' '.join(sorted(principal.scopes))}{_expiry_note(expires_at)}"
    )
    print("The token is shown once; store it now:")
    print(token)
    return 0


def _key_source(source: str) -> tuple[Any, str | None]:
    """A system's public keys as (JWKS, None) from a file, or (None, URL)."""
    from service.platform.jwt import public_key_set

    if source.startswith(("https://", "http://")):
        return None, source
    jwks = json.loads(Path(source).read_text(encoding="utf-8"))
    public_key_set(jwks)  # public keys only, and readable
    return jwks, None


def _days(value: str) -> timedelta:
    try:
        days = int(value)
    except ValueError:
        days = 0
    if days < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of days, 1 or more")
    return timedelta(days=days)


def _instant(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 date and time, as in 2027-01-31T00:00:00Z"
        ) from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} needs a UTC offset, as in 2027-01-31T00:00:00Z"
        )
    if when <= datetime.now(UTC):
        raise argparse.ArgumentTypeError(f"{value!r} is in the past")
    return when


def _add_expiry_options(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--expires-in", type=_days, metavar="DAYS", help=f"{what} expires this many days from now"
    )
    group.add_argument(
        "--expires-at",
        type=_instant,
        metavar="WHEN",
        help=f"{what} expires at this ISO 8601 time with offset, e.g. 2027-01-31T00:00:00Z",
    )


def _expiry(args: argparse.Namespace) -> datetime | None:
    if args.expires_in is not None:
        return datetime.now(UTC) + args.expires_in
    return args.expires_at  # type: ignore[no-any-return]


def _expiry_note(expiry: datetime | None) -> str:
    return f", expiring {_when(expiry)}" if expiry is not None else ""


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "-"


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


CLIENT_COLUMNS = ("ID", "CLINIC", "NAME", "SCOPES", "CREATED", "EXPIRES", "ROTATED", "REVOKED")


def _clients_list(args: argparse.Namespace) -> int:
    from service.systems.service import Clients

    async def show(db: Database) -> int:
        rows = [
            (
                str(c.id),
                c.clinic,
                c.name,
                ",".join(sorted(c.scopes)),
                _when(c.created_at),
                _when(c.expires_at),
                _when(c.rotated_at),
                _when(c.revoked_at),
            )
            for c in await Clients(db).list(args.clinic)
        ]
        _print_table(CLIENT_COLUMNS, rows)
        return 0

    return _refusing(show)


def _clients_revoke(args: argparse.Namespace) -> int:
    from service.systems.service import Clients

    async def revoke(db: Database) -> int:
        client, revoked = await Clients(db).revoke(args.id)
        if not revoked:
            print(f"client {client.id} was already revoked at {_when(client.revoked_at)}")
            return 0
        print(
            f"revoked client {client.id} (clinic {client.clinic!r}, name {client.name!r}): "
            "every worker refuses its token within a second"
        )
        return 0

    return _refusing(revoke)


def _clients_rotate(args: argparse.Namespace) -> int:
    from service.systems.service import Clients

    expires_at = _expiry(args)

    async def rotate(db: Database) -> int:
        client, token = await Clients(db).rotate(args.id, expires_at)
        print(
            f"client {client.id} (clinic {client.clinic!r}, name {client.name!r}) has a new "
            f"token{_expiry_note(expires_at)}; every worker refuses the old one within a second"
        )
        print("The token is shown once; store it now:")
        print(token)
        return 0

    return _refusing(rotate)


SYSTEM_COLUMNS = (
    "ID", "CLINIC", "NAME", "ISSUER", "KEYS", "SCOPES", "CREATED", "EXPIRES", "ROTATED", "REVOKED"
)  # fmt: skip


def _keys_shown(jwks: Any, jwks_url: str | None) -> str:
    """A system's keys in a listing: its JWKS URL, or the key ids of its registered JWKS."""
    if jwks_url is not None:
        return jwks_url
    return "jwks:" + ",".join(str(key.get("kid", "?")) for key in jwks.get("keys", []))


def _systems_list(args: argparse.Namespace) -> int:
    from service.systems.service import Systems

    async def show(db: Database) -> int:
        rows = [
            (
                str(s.client.id),
                s.client.clinic,
                s.client.name,
                s.issuer,
                _keys_shown(s.jwks, s.jwks_url),
                ",".join(sorted(s.client.scopes)),
                _when(s.client.created_at),
                _when(s.client.expires_at),
                _when(s.client.rotated_at),
                _when(s.client.revoked_at),
            )
            for s in await Systems(db).list(args.clinic)
        ]
        _print_table(SYSTEM_COLUMNS, rows)
        return 0

    return _refusing(show)


def _systems_revoke(args: argparse.Namespace) -> int:
    from service.systems.service import Systems

    async def revoke(db: Database) -> int:
        system, revoked = await Systems(db).revoke(args.system)
        if not revoked:
            print(
                f"system {system.client.id} was already revoked at "
                f"{_when(system.client.revoked_at)}"
            )
            return 0
        print(
            f"revoked system {system.client.id} (issuer {system.issuer!r}, clinic "
            f"{system.client.clinic!r}): its JWTs are refused from now on, and every worker "
            "refuses its access tokens within a second"
        )
        return 0

    return _refusing(revoke)


def _systems_rotate(args: argparse.Namespace) -> int:
    from service.systems.service import Systems

    try:
        jwks, jwks_url = _key_source(args.jwks)
    except (OSError, ValueError) as exc:
        print(f"error: {args.jwks}: {exc}", file=sys.stderr)
        return 2
    expires_at = _expiry(args)

    async def rotate(db: Database) -> int:
        system = await Systems(db).replace_keys(
            args.system, jwks=jwks, jwks_url=jwks_url, expires_at=expires_at
        )
        print(
            f"system {system.client.id} (issuer {system.issuer!r}) now has the keys "
            f"{jwks_url or 'from ' + args.jwks}{_expiry_note(expires_at)}: JWTs signed by the "
            "old keys are refused from now on, and every worker refuses its earlier access "
            "tokens within a second"
        )
        return 0

    return _refusing(rotate)


def openapi_documents() -> dict[str, str]:
    """The app's OpenAPI document as JSON and YAML text, as exported to openapi/."""
    import yaml

    from service.app import create_app
    from service.settings import Settings

    # The document needs no database: the engine is created but never connects.
    app = create_app(Settings(database_url="postgresql+asyncpg://openapi@localhost/none"))
    document = app.state.openapi_document
    return {
        "openapi.json": json.dumps(document, indent=2, sort_keys=True) + "\n",
        "openapi.yaml": yaml.safe_dump(document, sort_keys=True, allow_unicode=True),
    }


def _openapi_export(args: argparse.Namespace) -> int:
    directory = Path(args.output)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in openapi_documents().items():
        (directory / name).write_text(text, encoding="utf-8")
        print(f"wrote {directory / name}")
    return 0


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    end = "\n" if done == total else ""
    print(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end, file=sys.stderr)


def _services_link(args: argparse.Namespace) -> int:
    from service.platform import secret_links
    from service.referrals.service import issue_inbox_link, revoke_inbox_links
    from service.settings import Settings
    from service.web.cli import DEFAULT_ORIGIN

    async def link(db: Database) -> int:
        if args.revoke:
            ended = await revoke_inbox_links(db, args.clinic, args.service)
            print(
                f"clinic {args.clinic!r}: {ended} inbox link(s) of service {args.service} revoked"
            )
            return 0
        token = await issue_inbox_link(db, args.clinic, args.service)
        base = Settings.from_env().public_base_url or DEFAULT_ORIGIN
        print(
            f"Inbox link for service {args.service} of {args.clinic!r} (until revoked; "
            "any earlier link no longer works). Give it to the service only:"
        )
        print(secret_links.url(base, "inbox", token))
        return 0

    return _refusing(link)


def _directory_import(args: argparse.Namespace) -> int:
    import asyncio

    import msgspec

    from service.directory.importing import (
        ImportFileError,
        OnError,
        import_directory,
        parse_file,
    )
    from service.platform.clinics import clinic_id_named
    from service.platform.database import Database

    try:
        parsed = parse_file(msgspec.json.decode(Path(args.file).read_bytes()))
    except (OSError, msgspec.DecodeError, ImportFileError) as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 2
    print(f"{args.file}: {parsed.format} file, {len(parsed.records)} records", file=sys.stderr)

    async def run() -> int:
        db = Database(_database_url())
        try:
            async with db.begin() as conn:
                clinic_id = await clinic_id_named(conn, args.clinic, create=args.create_clinic)
            report = await import_directory(
                db,
                clinic_id,
                parsed,
                OnError(args.on_error),
                progress=_progress if sys.stderr.isatty() and len(parsed.records) >= 20 else None,
            )
        finally:
            await db.dispose()
        for rejected in report.rejected:
            print(
                f"rejected [{rejected.index}] {rejected.source_id}: {'; '.join(rejected.reasons)}",
                file=sys.stderr,
            )
        if not report.applied:
            print(
                "nothing imported: the file has rejected records "
                "(--on-error skip-record imports the rest)",
                file=sys.stderr,
            )
            return 1
        print(
            f"created {report.created}, updated {report.updated}, rejected {len(report.rejected)}"
        )
        return 0

    try:
        return asyncio.run(run())
    except UnknownClinic as exc:
        return _refuse_unknown_clinic(exc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="belong", description="Belong service commands")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the API with granian")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    serve.add_argument(
        "--graceful-timeout",
        type=int,
        default=30,
        help="seconds a worker may finish in-flight requests on shutdown",
    )
    serve.set_defaults(run=_serve)

    db = commands.add_parser("db", help="database schema")
    db_actions = db.add_subparsers(dest="action", required=True)
    db_upgrade = db_actions.add_parser("upgrade", help="apply migrations (BELONG_DATABASE_URL)")
    db_upgrade.add_argument("revision", nargs="?", default="head")
    db_upgrade.set_defaults(run=_db_upgrade)

    clinics = commands.add_parser("clinics", help="clinics (tenants) and their languages")
    clinic_actions = clinics.add_subparsers(dest="action", required=True)
    languages_help = (
        "a BCP 47 language the clinic's patients speak (repeat for each): matching's "
        "languages for a patient whose profile records none"
    )
    clinic_create = clinic_actions.add_parser("create", help="create a clinic")
    clinic_create.add_argument("--name", required=True, help="the clinic's name (unique)")
    clinic_create.add_argument(
        "--language",
        action="append",
        metavar="CODE",
        help=languages_help + f" (default: {', '.join(DEFAULT_LANGUAGES)})",
    )
    clinic_create.add_argument(
        "--if-missing",
        action="store_true",
        help="succeed, changing nothing, when the clinic exists already",
    )
    clinic_create.set_defaults(run=_clinics_create)
    clinic_list = clinic_actions.add_parser("list", help="list the clinics")
    clinic_list.set_defaults(run=_clinics_list)
    clinic_update = clinic_actions.add_parser("update", help="set a clinic's languages")
    clinic_update.add_argument("--name", required=True, help="the clinic's name")
    clinic_update.add_argument(
        "--language", action="append", metavar="CODE", required=True, help=languages_help
    )
    clinic_update.set_defaults(run=_clinics_update)
    clinic_idp = clinic_actions.add_parser(
        "idp",
        help="set the clinic's OpenID provider for signing in to the clinician app",
        description="Users of the clinic sign in to /app through this OpenID provider "
        "(authorization code with PKCE S256); each becomes a user of the clinic with the "
        "role its role claim maps to. Running it again replaces the clinic's provider.",
    )
    clinic_idp.add_argument("--clinic", required=True, help="the clinic's name")
    clinic_idp.add_argument(
        "--issuer", required=True, help="the provider's issuer URL, exactly as it names itself"
    )
    clinic_idp.add_argument("--client-id", required=True, help="Belong's client id at the provider")
    clinic_idp.add_argument(
        "--secret-ref",
        required=True,
        metavar="env:VAR|file:/PATH",
        help="where the client secret is found when a user signs in (never the secret itself)",
    )
    clinic_idp.add_argument(
        "--role-claim",
        default="belong_role",
        help="the id_token claim holding the user's role; a dotted path reaches into nested "
        "claims (realm_access.roles) (default: belong_role)",
    )
    clinic_idp.add_argument(
        "--role-map",
        metavar="VALUE=ROLE,...",
        help="the provider's role values and the Belong roles they give (clinician, "
        "coordinator, admin) (default: each role's own name)",
    )
    clinic_idp.add_argument(
        "--scope", action="append", help="a scope to request beside openid (repeat for each)"
    )
    clinic_idp.set_defaults(run=_clinics_idp)
    create_clinic_help = (
        f"create the clinic (languages: {', '.join(DEFAULT_LANGUAGES)}) if there is none of "
        "that name; without it an unknown clinic name is refused"
    )

    add_user_commands(commands)
    add_ehr_commands(commands)

    clients = commands.add_parser("clients", help="API clients and their tokens")
    client_actions = clients.add_subparsers(dest="action", required=True)
    create = client_actions.add_parser(
        "create", help="create a client of a clinic; prints the token last"
    )
    create.add_argument("--clinic", required=True, help="clinic name")
    create.add_argument("--create-clinic", action="store_true", help=create_clinic_help)
    create.add_argument(
        "--scope", action="append", required=True, choices=SCOPES, help="repeat for each scope"
    )
    create.add_argument("--name", default="api", help="a label for the client")
    create.add_argument(
        "--jwks",
        metavar="FILE_OR_URL",
        help="a system signing its own JWTs (SMART Backend Services, CDS Hooks): its public "
        "keys as a JWKS file, or an https:// JWKS URL; prints its client_id instead of a token",
    )
    create.add_argument(
        "--issuer",
        help="with --jwks: the iss its JWTs carry (a CDS client's issuer; default: the "
        "client's id, which is then its SMART client_id)",
    )
    _add_expiry_options(create, "the client")
    create.set_defaults(run=_clients_create)
    listing = client_actions.add_parser(
        "list", help="list the bearer-token clients (never their tokens)"
    )
    listing.add_argument("--clinic", help="only this clinic's")
    listing.set_defaults(run=_clients_list)
    revoke = client_actions.add_parser(
        "revoke", help="revoke a client: every worker refuses its token within a second"
    )
    revoke.add_argument("id", help="the client's id (from belong clients list)")
    revoke.set_defaults(run=_clients_revoke)
    rotate = client_actions.add_parser(
        "rotate", help="give a client a new token (printed last); the old one is refused"
    )
    rotate.add_argument("id", help="the client's id (from belong clients list)")
    _add_expiry_options(rotate, "the new token")
    rotate.set_defaults(run=_clients_rotate)

    systems = commands.add_parser(
        "systems",
        help="systems that sign JWTs (SMART, CDS Hooks), registered with clients create --jwks",
    )
    system_actions = systems.add_subparsers(dest="action", required=True)
    systems_listing = system_actions.add_parser("list", help="list the registered systems")
    systems_listing.add_argument("--clinic", help="only this clinic's")
    systems_listing.set_defaults(run=_systems_list)
    systems_revoke = system_actions.add_parser(
        "revoke", help="revoke a system: its JWTs and access tokens are refused"
    )
    systems_revoke.add_argument("system", metavar="ID_OR_ISSUER")
    systems_revoke.set_defaults(run=_systems_revoke)
    systems_rotate = system_actions.add_parser(
        "rotate", help="replace a system's public keys; what the old keys signed is refused"
    )
    systems_rotate.add_argument("system", metavar="ID_OR_ISSUER")
    systems_rotate.add_argument(
        "--jwks",
        metavar="FILE_OR_URL",
        required=True,
        help="its new public keys as a JWKS file, or an https:// JWKS URL (the same URL "
        "again reads it anew)",
    )
    _add_expiry_options(systems_rotate, "the system")
    systems_rotate.set_defaults(run=_systems_rotate)

    directory = commands.add_parser("directory", help="a clinic's service directory")
    directory_actions = directory.add_subparsers(dest="action", required=True)
    imports = directory_actions.add_parser(
        "import", help="import an HSDS 3.0 file or a FHIR Bundle of HealthcareService"
    )
    imports.add_argument("--clinic", required=True, help="clinic name")
    imports.add_argument("--create-clinic", action="store_true", help=create_clinic_help)
    imports.add_argument(
        "--on-error", choices=[e.value for e in OnError], default=OnError.REJECT_FILE.value
    )
    imports.add_argument("file")
    imports.set_defaults(run=_directory_import)

    services = commands.add_parser("services", help="a clinic's directory services")
    service_actions = services.add_subparsers(dest="action", required=True)
    service_link = service_actions.add_parser(
        "link",
        help="give a service its inbox link (revoking the earlier one), or --revoke it",
    )
    service_link.add_argument("--clinic", required=True, help="clinic name")
    service_link.add_argument("--service", required=True, metavar="ID", help="the service's id")
    service_link.add_argument(
        "--revoke", action="store_true", help="only revoke the service's inbox links"
    )
    service_link.set_defaults(run=_services_link)

    openapi = commands.add_parser("openapi", help="the published OpenAPI document")
    openapi_actions = openapi.add_subparsers(dest="action", required=True)
    export = openapi_actions.add_parser("export", help="write openapi/openapi.json and .yaml")
    export.add_argument("--output", default=str(OPENAPI_DIR))
    export.set_defaults(run=_openapi_export)

    instruments = commands.add_parser("instruments", help="instrument definitions")
    inst = instruments.add_subparsers(dest="action", required=True)
    check = inst.add_parser("check", help="load every definition and list it")
    check.set_defaults(run=_instruments_check)
    schema = inst.add_parser("schema", help="write the JSON Schema of a definition file")
    schema.add_argument("--output", default=str(INSTRUMENT_SCHEMA))
    schema.set_defaults(run=_instruments_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
