"""Bearer tokens, per-route scopes, public routes, and tokens stored only as hashes."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from service.platform.auth import TokenCache
from service.platform.tables import api_clients
from service.systems.repository import create_client
from tests.conftest import Clinic, MakeClinic
from tests.helpers import (
    BelongCli,
    Storage,
    assert_problem,
    new_patient_id,
    seconds_until_refused,
    ucla3,
)
from tests.live import belong, live_server

PROTECTED = [
    ("GET", "/v1/patients/pat-1"),
    ("PUT", "/v1/patients/pat-1"),
    ("GET", "/v1/patients/pat-1/screenings"),
    ("POST", "/v1/screenings"),
    ("GET", "/v1/screenings/01234567-89ab-cdef-0123-456789abcdef"),
    ("GET", "/v1/audit-events"),
    ("POST", "/v1/instruments/ucla-3/score"),
]


def call(session_client: Any, method: str, path: str, headers: dict[str, str]) -> Any:
    body = ucla3("pat-1") if path == "/v1/screenings" else {}
    if method in {"PUT", "POST"}:
        return session_client.request(method, path, json=body, headers=headers)
    return session_client.request(method, path, headers=headers)


def assert_unauthorized(response: Any) -> None:
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_token_is_401_with_a_bearer_challenge(
    session_client: Any, method: str, path: str
) -> None:
    assert_unauthorized(call(session_client, method, path, {}))


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(f"Bearer blg_{secrets.token_urlsafe(32)}", id="unknown-token"),
        pytest.param("Bearer ", id="empty-token"),
        pytest.param("Basic dXNlcjpwYXNz", id="basic-scheme"),
        pytest.param("blg_abc", id="no-scheme"),
        pytest.param("Bearer " + "a" * 300, id="oversized-token"),
    ],
)
def test_bad_token_is_401(session_client: Any, authorization: str) -> None:
    response = session_client.get("/v1/patients/pat-1", headers={"Authorization": authorization})
    assert_unauthorized(response)


def test_a_valid_token_with_the_wrong_case_scheme_still_works(
    session_client: Any, make_clinic: MakeClinic
) -> None:
    clinic = make_clinic()
    response = session_client.get(
        "/v1/audit-events", headers={"Authorization": f"bearer {clinic.token}"}
    )
    assert response.status_code == 200


def test_revoked_token_is_401(
    session_client: Any, make_clinic: MakeClinic, storage: Storage
) -> None:
    clinic = make_clinic()

    async def revoke(conn: Any) -> None:
        await conn.execute(
            sa.update(api_clients)
            .where(api_clients.c.clinic_id == clinic.clinic_id)
            .values(revoked_at=sa.func.now())
        )

    storage.run(revoke)
    assert_unauthorized(session_client.get("/v1/audit-events", headers=clinic.headers))


def test_read_only_client_cannot_post_a_screening(
    session_client: Any, make_clinic: MakeClinic, storage: Storage
) -> None:
    clinic = make_clinic(scopes=("screenings:read",))
    patient_id = new_patient_id()
    response = session_client.post("/v1/screenings", json=ucla3(patient_id), headers=clinic.headers)
    body = assert_problem(response, 403)
    assert "screenings:write" in body["detail"]
    assert storage.patient(clinic.clinic_id, patient_id).profile is None
    # The same client may read: the patient simply does not exist.
    read = session_client.get(f"/v1/patients/{patient_id}", headers=clinic.headers)
    assert_problem(read, 404, "patient_id")


def test_read_only_client_cannot_put_a_profile(
    session_client: Any, make_clinic: MakeClinic, storage: Storage
) -> None:
    clinic = make_clinic(scopes=("screenings:read",))
    patient_id = new_patient_id()
    response = session_client.put(
        f"/v1/patients/{patient_id}", json={"postcode": "SW1A 1AA"}, headers=clinic.headers
    )
    assert_problem(response, 403)
    assert storage.patient(clinic.clinic_id, patient_id).profile is None


@pytest.mark.parametrize(
    "path",
    [
        "/v1/patients/{patient_id}",
        "/v1/patients/{patient_id}/screenings",
        "/v1/screenings/{screening_id}",
    ],
)
def test_write_only_client_cannot_read(
    session_client: Any, make_clinic: MakeClinic, path: str
) -> None:
    clinic = make_clinic(scopes=("screenings:write",))
    patient_id = new_patient_id()
    posted = session_client.post("/v1/screenings", json=ucla3(patient_id), headers=clinic.headers)
    assert posted.status_code == 201, posted.text
    url = path.format(patient_id=patient_id, screening_id=posted.json()["id"])
    body = assert_problem(session_client.get(url, headers=clinic.headers), 403)
    assert "screenings:read" in body["detail"]


def test_listing_audit_events_needs_audit_read(
    session_client: Any, make_clinic: MakeClinic
) -> None:
    scopes = ("screenings:read", "screenings:write", "referrals:read", "referrals:write")
    clinic = make_clinic(scopes=scopes)
    body = assert_problem(session_client.get("/v1/audit-events", headers=clinic.headers), 403)
    assert "audit:read" in body["detail"]
    auditor = make_clinic(scopes=("audit:read",))
    assert session_client.get("/v1/audit-events", headers=auditor.headers).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/health/live",
        "/v1/instruments",
        "/v1/instruments/ucla-3",
        "/fhir/Questionnaire",
        "/fhir/Questionnaire/ucla-3",
    ],
)
def test_public_routes_need_no_token(session_client: Any, path: str) -> None:
    response = session_client.get(path)
    assert response.status_code == 200, response.text


def test_token_is_stored_only_as_its_sha256(
    session_client: Any, make_clinic: MakeClinic, storage: Storage
) -> None:
    clinic = make_clinic()

    async def rows(conn: Any) -> list[Any]:
        query = sa.select(api_clients).where(api_clients.c.clinic_id == clinic.clinic_id)
        return list((await conn.execute(query)).all())

    (row,) = storage.run(rows)
    assert row.token_hash == hashlib.sha256(clinic.token.encode()).hexdigest()
    assert all(clinic.token not in str(value) for value in row)
    # ...and the token is not a short or guessable string.
    assert len(clinic.token) >= 40
    assert session_client.get("/v1/audit-events", headers=clinic.headers).status_code == 200


# --------------------------------------------------------------- listing, revoking, rotating


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def created(belong_cli: BelongCli, *args: str) -> tuple[uuid.UUID, str]:
    """``belong clients create ARGS``: the new client's id and its token."""
    run = belong_cli("clients", "create", "--create-clinic", *args)
    assert run.code == 0, run.err
    client_id = run.out[0].split("client ", 1)[1].split()[0]
    return uuid.UUID(client_id), run.out[-1]


def listed(belong_cli: BelongCli, *args: str) -> dict[str, list[str]]:
    """``belong clients list ARGS``: each client's columns (split on runs of 2+ spaces) by id,
    the header under "ID"."""
    run = belong_cli("clients", "list", *args)
    assert run.code == 0, run.err
    rows = [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in run.out]
    return {row[0]: row for row in rows}


def stored_client(storage: Storage, client_id: uuid.UUID) -> Any:
    async def look(conn: Any) -> Any:
        query = sa.select(api_clients).where(api_clients.c.id == client_id)
        return (await conn.execute(query)).one()

    return storage.run(look)


def test_clients_list_shows_each_client_but_never_its_token(
    belong_cli: BelongCli, storage: Storage
) -> None:
    clinic = f"list-{uuid.uuid4()}"
    reader, reader_token = created(
        belong_cli, "--clinic", clinic, "--scope", "audit:read", "--name", "reader"
    )
    writer, writer_token = created(
        belong_cli,
        "--clinic",
        clinic,
        "--scope",
        "screenings:write",
        "--scope",
        "screenings:read",
        "--name",
        "writer",
        "--expires-in",
        "30",
    )
    other, _ = created(belong_cli, "--clinic", f"other-{uuid.uuid4()}", "--scope", "audit:read")
    rows = listed(belong_cli, "--clinic", clinic)
    assert rows["ID"] == [
        "ID", "CLINIC", "NAME", "SCOPES", "CREATED", "EXPIRES", "ROTATED", "REVOKED"
    ]  # fmt: skip
    assert set(rows) == {"ID", str(reader), str(writer)}
    row = stored_client(storage, writer)
    expires = row.expires_at.astimezone(UTC) if row.expires_at.tzinfo else row.expires_at
    assert rows[str(writer)][1:] == [
        clinic,
        "writer",
        "screenings:read,screenings:write",
        rows[str(writer)][4],
        expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "-",
        "-",
    ]
    assert rows[str(reader)][1:4] == [clinic, "reader", "audit:read"]
    assert rows[str(reader)][5:] == ["-", "-", "-"]
    everything = belong_cli("clients", "list")
    assert everything.code == 0
    text = "\n".join(everything.out)
    assert {str(reader), str(writer), str(other)} <= set(listed(belong_cli))
    for token in (reader_token, writer_token):
        assert token not in text
        assert hashlib.sha256(token.encode()).hexdigest() not in text
    unknown = belong_cli("clients", "list", "--clinic", f"nobody-{uuid.uuid4()}")
    assert unknown.code == 2
    assert "no clinic" in unknown.err


def test_a_revoked_token_is_refused_within_a_second_though_cached(
    session_client: Any, belong_cli: BelongCli, make_clinic: MakeClinic
) -> None:
    client_id, token = created(
        belong_cli, "--clinic", f"revoke-{uuid.uuid4()}", "--scope", "audit:read"
    )
    neighbour = make_clinic()
    assert session_client.get("/v1/audit-events", headers=bearer(token)).status_code == 200
    cached = time.monotonic()  # the app now holds the token in its cache
    revoked = belong_cli("clients", "revoke", str(client_id))
    assert revoked.code == 0, revoked.err
    assert str(client_id) in revoked.out[0]
    assert seconds_until_refused(session_client, bearer(token), cached) <= 1.3
    assert session_client.get("/v1/audit-events", headers=bearer(token)).status_code == 401
    assert session_client.get("/v1/audit-events", headers=neighbour.headers).status_code == 200
    rows = listed(belong_cli)
    assert rows[str(client_id)][-1] != "-"  # REVOKED shows when
    again = belong_cli("clients", "revoke", str(client_id))
    assert again.code == 0
    assert "already revoked" in again.out[0]
    assert listed(belong_cli)[str(client_id)] == rows[str(client_id)]


def test_a_rotated_token_is_refused_within_a_second_and_the_new_one_works_at_once(
    session_client: Any, belong_cli: BelongCli, storage: Storage
) -> None:
    client_id, old = created(
        belong_cli, "--clinic", f"rotate-{uuid.uuid4()}", "--scope", "audit:read"
    )
    assert session_client.get("/v1/audit-events", headers=bearer(old)).status_code == 200
    cached = time.monotonic()
    rotated = belong_cli("clients", "rotate", str(client_id))
    assert rotated.code == 0, rotated.err
    new = rotated.out[-1]
    assert new.startswith("blg_") and new != old
    assert session_client.get("/v1/audit-events", headers=bearer(new)).status_code == 200
    assert seconds_until_refused(session_client, bearer(old), cached) <= 1.3
    assert session_client.get("/v1/audit-events", headers=bearer(new)).status_code == 200
    # the same client, so its audit trail continues; only the new token's hash is kept
    row = stored_client(storage, client_id)
    assert row.token_hash == hashlib.sha256(new.encode()).hexdigest()
    assert row.rotated_at is not None and row.revoked_at is None
    assert listed(belong_cli)[str(client_id)][6] != "-"  # ROTATED shows when


def test_every_worker_of_a_running_server_refuses_a_revoked_token_within_a_second(
    database_url: str, tmp_path: Path
) -> None:
    """``belong serve`` with two worker processes, which cache the token as they serve it,
    and ``belong clients revoke`` run beside them as an operator would."""
    clinic = f"workers-{uuid.uuid4()}"
    with live_server(database_url, tmp_path, ["audit:read"], clinic=clinic, workers=2) as live:

        def statuses(calls: int) -> set[int]:
            """Each call on a connection of its own, so that any worker may take it."""
            seen = set()
            for _ in range(calls):
                with httpx.Client(base_url=live.origin, headers=live.headers) as client:
                    seen.add(client.get("/v1/audit-events").status_code)
            return seen

        assert statuses(20) == {200}
        cached = time.monotonic()
        listing = belong("clients", "list", "--clinic", clinic, env=live.env).splitlines()
        client_id = listing[1].split()[0]
        belong("clients", "revoke", client_id, env=live.env)
        time.sleep(max(0.0, cached + 1.0 - time.monotonic()))
        assert statuses(20) == {401}


def test_revoke_and_rotate_name_what_is_wrong(belong_cli: BelongCli) -> None:
    client_id, _ = created(belong_cli, "--clinic", f"wrong-{uuid.uuid4()}", "--scope", "audit:read")
    for action in ("revoke", "rotate"):
        unknown = belong_cli("clients", action, str(uuid.uuid4()))
        assert unknown.code == 2
        assert "no client" in unknown.err
        garbage = belong_cli("clients", action, "not-an-id")
        assert garbage.code == 2
        assert "not-an-id" in garbage.err
    assert belong_cli("clients", "revoke", str(client_id)).code == 0
    after = belong_cli("clients", "rotate", str(client_id))
    assert after.code == 2
    assert "revoked" in after.err


def test_a_token_is_refused_from_its_expiry_even_while_cached(
    session_client: Any, storage: Storage
) -> None:
    expiry = datetime.now(UTC) + timedelta(seconds=1)

    async def create(conn: Any) -> str:
        _, token = await create_client(
            conn, f"expiry-{uuid.uuid4()}", ["audit:read"], expires_at=expiry, create_clinic=True
        )
        return token

    token = storage.run(create)
    # cached half a second before its expiry, so a cache keeping it a whole second would
    # still serve it after
    time.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds() - 0.5))
    assert session_client.get("/v1/audit-events", headers=bearer(token)).status_code == 200
    time.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds() + 0.05))
    response = session_client.get("/v1/audit-events", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_cli_expiry_options(session_client: Any, belong_cli: BelongCli, storage: Storage) -> None:
    clinic = f"expiring-{uuid.uuid4()}"
    before = datetime.now(UTC)
    in_days, token = created(
        belong_cli, "--clinic", clinic, "--scope", "audit:read", "--expires-in", "30"
    )
    expires = stored_client(storage, in_days).expires_at
    expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
    assert before + timedelta(days=30) <= expires <= datetime.now(UTC) + timedelta(days=30)
    assert session_client.get("/v1/audit-events", headers=bearer(token)).status_code == 200
    at, _ = created(
        belong_cli,
        "--clinic",
        clinic,
        "--scope",
        "audit:read",
        "--expires-at",
        "2999-01-31T12:00:00+01:00",
    )
    assert listed(belong_cli, "--clinic", clinic)[str(at)][5] == "2999-01-31T11:00:00Z"
    base = ("clients", "create", "--clinic", clinic, "--scope", "audit:read")
    for bad, named in [
        (("--expires-at", "2020-01-01T00:00:00Z"), "past"),
        (("--expires-at", "2999-01-31T12:00:00"), "offset"),
        (("--expires-at", "soon"), "soon"),
        (("--expires-in", "0"), "expires-in"),
        (("--expires-in", "30", "--expires-at", "2999-01-31T12:00:00Z"), "expires"),
    ]:
        refused = belong_cli(*base, *bad)
        assert refused.code == 2, bad
        assert named in refused.err, (bad, refused.err)
    assert set(listed(belong_cli, "--clinic", clinic)) == {"ID", str(in_days), str(at)}
    # rotating may give the client a new expiry
    rotated = belong_cli("clients", "rotate", str(in_days), "--expires-at", "2999-02-01T00:00:00Z")
    assert rotated.code == 0, rotated.err
    assert listed(belong_cli, "--clinic", clinic)[str(in_days)][5] == "2999-02-01T00:00:00Z"


def test_concurrent_misses_of_one_token_share_one_look_up(
    session_client: Any, clinic: Clinic
) -> None:
    """An entry expiring under load costs one query: every concurrent caller gets the one
    principal that a single look-up made (each look-up makes a new one)."""
    db = session_client.app.state.db

    async def many() -> list[Any]:
        cache = TokenCache()
        return await asyncio.gather(*(cache.principal(db, clinic.token) for _ in range(20)))

    found = session_client.blocking_portal.call(many)
    assert found[0] is not None and found[0].clinic_id == clinic.clinic_id
    assert all(principal is found[0] for principal in found)
