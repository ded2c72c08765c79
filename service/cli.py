"""The ``belong`` command line."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from service.api.importing import OnError
from service.settings import PROJECT_ROOT
from service.store.clients import SCOPES

INSTRUMENT_SCHEMA = PROJECT_ROOT / "schemas" / "instrument.schema.json"
OPENAPI_DIR = PROJECT_ROOT / "openapi"


def asgi_app() -> Any:
    """What each granian worker serves: JSON logging, then the app from the environment."""
    from service.api.observability import configure_logging
    from service.app import create_app
    from service.settings import Settings

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    return create_app(settings)


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
    from service.domain.instruments import json_schema

    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def _instruments_schema(args: argparse.Namespace) -> int:
    Path(args.output).write_text(_instrument_schema_text(), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


def _instruments_check(args: argparse.Namespace) -> int:
    from service.domain.instruments import InstrumentError, load_catalog
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
    from service.settings import Settings
    from service.store.migrate import upgrade

    upgrade(Settings.from_env().database_url, args.revision)
    print(f"database at {args.revision}")
    return 0


def _clients_create_with_keys(args: argparse.Namespace) -> int:
    """A system client that signs JWTs (SMART Backend Services or a CDS Hooks client)."""
    import asyncio

    from service.api.assertions import public_key_set
    from service.settings import Settings
    from service.store.database import Database
    from service.store.systems import create_system_client

    jwks: Any = None
    jwks_url: str | None = None
    if args.jwks.startswith(("https://", "http://")):
        jwks_url = args.jwks
    else:
        try:
            jwks = json.loads(Path(args.jwks).read_text(encoding="utf-8"))
            public_key_set(jwks)
        except (OSError, ValueError) as exc:
            print(f"error: {args.jwks}: {exc}", file=sys.stderr)
            return 2

    async def create() -> str:
        db = Database(Settings.from_env().database_url)
        try:
            async with db.begin() as conn:
                client = await create_system_client(
                    conn,
                    args.clinic,
                    args.scope,
                    args.name,
                    issuer=args.issuer,
                    jwks=jwks,
                    jwks_url=jwks_url,
                )
        finally:
            await db.dispose()
        print(
            f"clinic {args.clinic!r}: client {client.principal.client_id} with scopes "
            f"{' '.join(sorted(client.principal.scopes))}, keys "
            f"{jwks_url or 'from ' + args.jwks}"
        )
        print("Its JWTs carry iss (and for SMART, sub and client_id):")
        return client.issuer

    try:
        issuer = asyncio.run(create())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(issuer)
    return 0


def _clients_create(args: argparse.Namespace) -> int:
    import asyncio

    if args.jwks is not None:
        return _clients_create_with_keys(args)
    if args.issuer is not None:
        print("error: --issuer goes with --jwks", file=sys.stderr)
        return 2

    from service.settings import Settings
    from service.store.clients import create_client
    from service.store.database import Database

    async def create() -> str:
        db = Database(Settings.from_env().database_url)
        try:
            async with db.begin() as conn:
                principal, token = await create_client(conn, args.clinic, args.scope, args.name)
        finally:
            await db.dispose()
        print(
            f"clinic {args.clinic!r}: client {principal.client_id} with scopes "
            f"{' '.join(sorted(principal.scopes))}"
        )
        print("The token is shown once; store it now:")
        return token

    try:
        token = asyncio.run(create())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def openapi_documents() -> dict[str, str]:
    """The app's OpenAPI document as JSON and YAML text, as exported to openapi/."""
    import yaml

    from service.app import create_app
    from service.settings import Settings

    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    from litestar._openapi.plugin import OpenAPIPlugin

    document = app.plugins.get(OpenAPIPlugin).provide_openapi_schema()
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


def _directory_import(args: argparse.Namespace) -> int:
    import asyncio

    import msgspec

    from service.api.importing import ImportFileError, OnError, apply, parse_file
    from service.settings import Settings
    from service.store.clients import ensure_clinic
    from service.store.database import Database, utcnow
    from service.store.repository import ClinicStore

    try:
        parsed = parse_file(msgspec.json.decode(Path(args.file).read_bytes()))
    except (OSError, msgspec.DecodeError, ImportFileError) as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 2
    print(f"{args.file}: {parsed.format} file, {len(parsed.records)} records", file=sys.stderr)

    async def run() -> int:
        db = Database(Settings.from_env().database_url)
        try:
            async with db.begin() as conn:
                clinic_id = await ensure_clinic(conn, args.clinic)
                report = await apply(
                    ClinicStore(conn, clinic_id),
                    parsed,
                    OnError(args.on_error),
                    utcnow(),
                    progress=_progress
                    if sys.stderr.isatty() and len(parsed.records) >= 20
                    else None,
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

    return asyncio.run(run())


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

    clients = commands.add_parser("clients", help="API clients and their tokens")
    client_actions = clients.add_subparsers(dest="action", required=True)
    create = client_actions.add_parser(
        "create", help="create a client (and its clinic if new); prints the token last"
    )
    create.add_argument("--clinic", required=True, help="clinic name")
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
    create.set_defaults(run=_clients_create)

    directory = commands.add_parser("directory", help="a clinic's service directory")
    directory_actions = directory.add_subparsers(dest="action", required=True)
    imports = directory_actions.add_parser(
        "import", help="import an HSDS 3.0 file or a FHIR Bundle of HealthcareService"
    )
    imports.add_argument("--clinic", required=True, help="clinic name (created if new)")
    imports.add_argument(
        "--on-error", choices=[e.value for e in OnError], default=OnError.REJECT_FILE.value
    )
    imports.add_argument("file")
    imports.set_defaults(run=_directory_import)

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
