"""The embedded PostgreSQL that ``make run`` uses when BELONG_DATABASE_URL is unset: it
starts in a folder of its own, creates the database, is found running by the next
command, takes the migrations, and stops."""

from __future__ import annotations

import tempfile
from pathlib import Path

from service.platform import embedded
from service.platform.migrate import upgrade
from service.platform.tables import metadata
from tests.helpers import table_names


def test_an_embedded_server_starts_is_found_running_migrates_and_stops() -> None:
    # A short folder: the server's socket path must stay under ~107 bytes.
    with tempfile.TemporaryDirectory(prefix="pg", dir="/tmp") as folder:
        data = Path(folder) / "pg"
        url = embedded.start(data, "belong")
        try:
            assert embedded.is_running(data)
            assert url == f"postgresql+asyncpg://postgres@/belong?host={data.resolve()}"
            assert embedded.start(data, "belong") == url  # the next command finds it up
            upgrade(url)
            assert set(metadata.tables) <= table_names(url)
        finally:
            embedded.stop(data)
        assert not embedded.is_running(data)
