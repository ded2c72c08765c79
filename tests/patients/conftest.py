"""The database tests' ``storage`` fixture, for the tests here (they left tests/db)."""

from tests.db.conftest import storage

__all__ = ["storage"]
