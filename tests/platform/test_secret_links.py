"""Secret links against PostgreSQL: a token opens its subject while it works, and says why
once it does not (revoked, expired, used); only a hash is stored; a kind opens nothing of
another kind; a single-use link is spent once even when two try at the same time."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from service.platform import secret_links
from service.platform.database import utcnow
from service.platform.tables import secret_links as table
from tests.conftest import Clinic
from tests.helpers import Storage


def test_a_link_opens_its_subject_and_only_its_hash_is_stored(
    storage: Storage, clinic: Clinic
) -> None:
    async def work(conn: Any) -> Any:
        token = await secret_links.issue(conn, clinic.clinic_id, "inbox", "svc-1", lifetime=None)
        stored = (await conn.execute(sa.select(table.c.token_hash))).scalars().all()
        return token, stored, await secret_links.resolve(conn, token, "inbox")

    token, stored, link = storage.run(work)
    assert re.fullmatch(secret_links.LINK_PATTERN, token)
    assert token not in stored
    assert link.clinic_id == clinic.clinic_id and link.subject_id == "svc-1"
    assert link.gone is None and link.expires_at is None


def test_a_link_says_why_it_no_longer_works(storage: Storage, clinic: Clinic) -> None:
    async def work(conn: Any) -> dict[str, Any]:
        made = {}
        for name in ("revoked", "expired", "used", "other-kind"):
            made[name] = await secret_links.issue(
                conn, clinic.clinic_id, "handout", f"ref-{name}", lifetime=timedelta(days=1)
            )
        assert await secret_links.revoke(conn, clinic.clinic_id, "handout", "ref-revoked") == 1
        await conn.execute(
            sa.update(table)
            .where(table.c.subject_id == "ref-expired")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        assert await secret_links.spend(conn, made["used"], "handout")
        assert not await secret_links.spend(conn, made["used"], "handout")
        return {
            "revoked": (await secret_links.resolve(conn, made["revoked"], "handout")).gone,
            "expired": (await secret_links.resolve(conn, made["expired"], "handout")).gone,
            "used": (await secret_links.resolve(conn, made["used"], "handout")).gone,
            "other-kind": await secret_links.resolve(conn, made["other-kind"], "inbox"),
            "unknown": await secret_links.resolve(conn, "x" * 43, "handout"),
            "spend-revoked": await secret_links.spend(conn, made["revoked"], "handout"),
        }

    seen = storage.run(work)
    assert seen == {
        "revoked": "revoked",
        "expired": "expired",
        "used": "used",
        "other-kind": None,
        "unknown": None,
        "spend-revoked": False,
    }


def test_a_single_use_link_is_spent_once_by_racing_callers(
    storage: Storage, clinic: Clinic
) -> None:
    db = storage.session_client.app.state.db

    async def race() -> list[bool]:
        async with db.begin() as conn:
            token = await secret_links.issue(
                conn, clinic.clinic_id, "patient", "ref-race", lifetime=timedelta(hours=1)
            )

        async def spend() -> bool:
            async with db.begin() as conn:
                return await secret_links.spend(conn, token, "patient")

        return list(await asyncio.gather(*(spend() for _ in range(5))))

    results = storage.session_client.blocking_portal.call(race)
    assert sorted(results) == [False, False, False, False, True]
