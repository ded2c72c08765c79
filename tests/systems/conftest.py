"""The database tests' fixtures (tests/db/conftest.py), for the tests here."""

from tests.db.conftest import belong_cli, storage

__all__ = ["belong_cli", "storage"]
