"""The database fixtures of tests/db/conftest.py, for this feature's tests against PostgreSQL."""

from tests.db.conftest import storage

__all__ = ["storage"]
