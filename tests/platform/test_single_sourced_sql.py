"""The hot statements are built from tables.py, never written out as SQL text a second
time: a column renamed or added there reaches them without another edit."""

from __future__ import annotations

import ast
import re

import pytest

from service.settings import PROJECT_ROOT

HOT_MODULES = [
    "service/screenings/repository.py",
    "service/referrals/repository.py",
    "service/platform/audit_writer.py",
]
SQL_TEXT = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|JOIN)\b")


@pytest.mark.parametrize("module", HOT_MODULES)
def test_hot_statements_are_not_written_as_sql_text(module: str) -> None:
    tree = ast.parse((PROJECT_ROOT / module).read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    sql = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and SQL_TEXT.search(node.value)
    ]
    assert sql == []


def test_each_hot_statement_is_compiled_once_from_the_tables() -> None:
    from service.platform import audit_writer
    from service.platform.database import Compiled
    from service.referrals import repository as referrals
    from service.screenings import repository as hotpaths

    statements = [
        hotpaths._CONTEXT,
        hotpaths._WRITE,
        referrals._PATIENT_REFERRALS,
        audit_writer._INSERT_BATCH,
    ]
    assert all(isinstance(s, Compiled) for s in statements)
    # Every column of audit_events reaches the batch insert, in the table's order.
    assert audit_writer._INSERT_BATCH.names == [c.name for c in audit_writer.audit_events.c]
