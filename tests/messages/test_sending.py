"""Sending the handout link end to end: the API, the real SMTP server and SMS webhook on the
loopback, the handout link live in the database, "do not contact", failures recorded, and
the patient's phone number or address kept nowhere (database, audit, logs)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import logging
import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import create_async_engine

from service.app import create_app
from service.messages.model import segments
from service.platform import secret_links
from service.platform.database import utcnow
from service.referrals.model import referral_code
from tests.conftest import MakeClinic
from tests.helpers import assert_problem
from tests.messages.conftest import (
    EMAIL,
    MAIL_FROM,
    PHONE,
    PUBLIC_BASE,
    SERVICE_NAME,
    WEBHOOK_SECRET,
    Peers,
    World,
    make_world,
    messaging_settings,
)

LINK = re.compile(re.escape(PUBLIC_BASE) + r"/h/([A-Za-z0-9_-]{43})")


def send(client: TestClient[Litestar], world: World, channel: str, to: str, **headers: str) -> Any:
    return client.post(
        world.messages,
        json={"channel": channel, "to": to},
        headers={**world.clinic.headers, **headers},
    )


def resolved(client: TestClient[Litestar], token: str) -> secret_links.SecretLink | None:
    async def look() -> secret_links.SecretLink | None:
        async with client.app.state.db.begin() as conn:
            return await secret_links.resolve(conn, token, "handout")

    return client.blocking_portal.call(look)


def assert_live_handout_link(client: TestClient[Litestar], world: World, text: str) -> None:
    [token] = LINK.findall(text)
    link = resolved(client, token)
    assert link is not None and link.gone is None
    assert (link.clinic_id, link.subject_id) == (world.clinic.clinic_id, world.referral_id)
    assert link.expires_at is not None
    assert abs(link.expires_at - (utcnow() + timedelta(days=30))) < timedelta(minutes=5)


def test_the_email_reaches_the_smtp_server_with_the_live_handout_link(
    sender: TestClient[Litestar], world: World, peers: Peers
) -> None:
    response = send(sender, world, "email", EMAIL)
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["status"] == "sent" and record["channel"] == "email"
    assert record["segments"] is None and record["sent_at"] is not None
    assert EMAIL not in response.text
    [(recipients, raw)] = peers.mailbox.received
    assert recipients == [EMAIL]
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail["From"] == MAIL_FROM and mail["To"] == EMAIL
    assert mail["Subject"] == f"Your referral from {world.clinic.name}"
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    code = referral_code(world.referral_id)
    for body in (text, html):
        assert world.clinic.name in body and SERVICE_NAME in body and code in body
        assert world.patient_id not in body
    assert_live_handout_link(sender, world, text)
    assert LINK.search(html)


def test_the_sms_reaches_the_webhook_signed_and_within_two_segments(
    sender: TestClient[Litestar], world: World, peers: Peers
) -> None:
    response = send(sender, world, "sms", PHONE)
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["status"] == "sent" and record["channel"] == "sms"
    [(headers, body)] = peers.gateway.received
    expected = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-belong-signature"] == f"sha256={expected}"
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert set(payload) == {"to", "body"} and payload["to"] == PHONE
    text = payload["body"]
    assert text == (
        f"{world.clinic.name}: your referral to {SERVICE_NAME}. "
        f"Code {referral_code(world.referral_id)}. Details: {LINK.search(text)[0]}"  # type: ignore[index]
    )
    assert record["segments"] == segments(text) <= 2
    assert_live_handout_link(sender, world, text)


def test_a_long_service_name_is_shortened_never_the_code_or_the_link(
    sender: TestClient[Litestar], make_clinic: MakeClinic, peers: Peers
) -> None:
    long_name = "Peer Support and Walking Group for Everyone in the Northern Valleys " * 4
    world = make_world(sender, make_clinic(), service_name=long_name.strip()[:200])
    record = send(sender, world, "sms", PHONE).json()
    text = json.loads(peers.gateway.received[0][1])["body"]
    assert record["segments"] == 2 == segments(text)
    assert "..." in text and long_name[:40] in text
    assert referral_code(world.referral_id) in text
    assert_live_handout_link(sender, world, text)


def test_a_spanish_speaking_patient_gets_spanish_kept_in_gsm7(
    sender: TestClient[Litestar], make_clinic: MakeClinic, peers: Peers
) -> None:
    world = make_world(sender, make_clinic(), languages=["es-MX", "en"])
    assert send(sender, world, "sms", PHONE).status_code == 201
    assert send(sender, world, "email", EMAIL).status_code == 201
    text = json.loads(peers.gateway.received[0][1])["body"]
    assert ": su derivacion a " in text and " Codigo " in text  # ó dropped: GSM 7-bit
    mail = email.message_from_bytes(peers.mailbox.received[0][1], policy=email.policy.default)
    assert mail["Subject"] == f"Su derivación de {world.clinic.name}"
    assert "Su código de derivación es" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_a_language_without_a_catalogue_falls_back_to_english(
    sender: TestClient[Litestar], make_clinic: MakeClinic, peers: Peers
) -> None:
    world = make_world(sender, make_clinic(), languages=["fr"])
    assert send(sender, world, "sms", PHONE).status_code == 201
    assert ": your referral to " in json.loads(peers.gateway.received[0][1])["body"]


def test_do_not_contact_sends_nothing_and_records_suppressed(
    sender: TestClient[Litestar], make_clinic: MakeClinic, peers: Peers
) -> None:
    world = make_world(sender, make_clinic(), do_not_contact=True)
    profile = sender.get(f"/v1/patients/{world.patient_id}", headers=world.clinic.headers)
    assert profile.json()["profile"]["do_not_contact"] is True
    for channel, to in (("sms", PHONE), ("email", EMAIL)):
        response = send(sender, world, channel, to)
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "suppressed"
        assert response.json()["sent_at"] is None
    assert peers.mailbox.received == [] and peers.gateway.received == []
    listed = sender.get(world.messages, headers=world.clinic.headers).json()["items"]
    assert [m["status"] for m in listed] == ["suppressed", "suppressed"]

    async def links() -> int:
        async with sender.app.state.db.begin() as conn:
            query = sa.select(sa.func.count()).where(
                secret_links.secret_links.c.subject_id == world.referral_id
            )
            return int((await conn.execute(query)).scalar_one())

    assert sender.blocking_portal.call(links) == 0


def test_a_refused_recipient_is_recorded_failed_without_the_address(
    sender: TestClient[Litestar], world: World, peers: Peers
) -> None:
    refused = "refuse.me@example.net"
    response = send(sender, world, "email", refused)
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["status"] == "failed" and record["sent_at"] is None
    assert record["error"] == "the mail server refused the recipient (550)"
    assert refused not in response.text and peers.mailbox.received == []


@pytest.mark.parametrize(
    ("status", "delay_s", "error"),
    [
        (500, 0.0, "the SMS gateway answered 500"),
        (403, 0.0, "the SMS gateway answered 403"),
        (200, 2.5, "the SMS gateway did not answer in 1 s"),
    ],
)
def test_a_webhook_failure_is_recorded_failed(
    sender: TestClient[Litestar],
    world: World,
    peers: Peers,
    status: int,
    delay_s: float,
    error: str,
) -> None:
    peers.gateway.status, peers.gateway.delay_s = status, delay_s
    record = send(sender, world, "sms", PHONE).json()
    assert (record["status"], record["error"]) == ("failed", error)
    assert len(peers.gateway.received) == 1


def test_an_unreachable_smtp_server_is_recorded_failed(
    database_url: str, peers: Peers, make_clinic: MakeClinic
) -> None:
    from tests.messages.conftest import free_port

    app = create_app(
        messaging_settings(database_url, peers, smtp_url=f"smtp://127.0.0.1:{free_port()}")
    )
    with TestClient(app) as client:
        world = make_world(client, make_clinic())
        record = send(client, world, "email", EMAIL).json()
    assert record["status"] == "failed"
    assert record["error"].startswith("the mail server could not be reached")


def test_a_channel_without_a_sender_is_409_naming_it_and_sends_nothing(
    database_url: str, peers: Peers, make_clinic: MakeClinic
) -> None:
    peers.clear()
    app = create_app(messaging_settings(database_url, peers, sms_webhook_url=None))
    with TestClient(app) as client:
        world = make_world(client, make_clinic())
        problem = assert_problem(send(client, world, "sms", PHONE), 409, "channel")
        assert "no sender for sms" in problem["detail"]
        assert "BELONG_SMS_WEBHOOK_URL" in problem["detail"]
        assert client.get(world.messages, headers=world.clinic.headers).json()["items"] == []
    assert peers.gateway.received == []


@pytest.mark.parametrize(
    ("channel", "to"),
    [
        ("sms", "07700900123"),
        ("sms", "+44 7700 900123"),
        ("sms", EMAIL),
        ("sms", "+447700900123\x00"),
        ("email", "not-an-address"),
        ("email", PHONE),
        ("email", "a@b.example\r\nBcc: x@y.example"),
        ("email", "patient\x00@example.net"),
    ],
)
def test_a_recipient_wrong_for_the_channel_is_422_naming_to_and_not_echoed(
    sender: TestClient[Litestar], world: World, peers: Peers, channel: str, to: str
) -> None:
    response = send(sender, world, channel, to)
    assert_problem(response, 422, "to")
    assert to not in response.text
    assert peers.mailbox.received == [] and peers.gateway.received == []


def test_an_unknown_channel_or_field_is_refused_naming_it(
    sender: TestClient[Litestar], world: World
) -> None:
    for body, field in (
        ({"channel": "fax", "to": PHONE}, "channel"),
        ({"channel": "sms"}, "to"),
        ({"channel": "sms", "to": PHONE, "name": "x"}, "name"),
    ):
        response = sender.post(world.messages, json=body, headers=world.clinic.headers)
        assert_problem(response, 400, field)


def test_another_clinics_referral_is_404_and_nothing_is_sent(
    sender: TestClient[Litestar], world: World, make_clinic: MakeClinic, peers: Peers
) -> None:
    other = make_clinic()
    for channel, to in (("sms", PHONE), ("email", EMAIL)):
        response = sender.post(
            world.messages, json={"channel": channel, "to": to}, headers=other.headers
        )
        assert_problem(response, 404, "referral_id")
    assert_problem(sender.get(world.messages, headers=other.headers), 404, "referral_id")
    missing = f"/v1/referrals/{uuid.uuid4()}/messages"
    assert_problem(
        sender.post(missing, json={"channel": "sms", "to": PHONE}, headers=world.clinic.headers),
        404,
        "referral_id",
    )
    assert peers.mailbox.received == [] and peers.gateway.received == []


def test_scopes_are_required(
    sender: TestClient[Litestar], world: World, make_clinic: MakeClinic
) -> None:
    reader = make_clinic(scopes=("referrals:read",))
    body = {"channel": "sms", "to": PHONE}
    assert sender.post(world.messages, json=body).status_code == 401
    assert sender.post(world.messages, json=body, headers=reader.headers).status_code == 403


def test_the_list_is_newest_first_and_the_sends_are_audited(
    sender: TestClient[Litestar], world: World
) -> None:
    first = send(sender, world, "sms", PHONE).json()
    second = send(sender, world, "email", EMAIL).json()
    listed = sender.get(world.messages, headers=world.clinic.headers)
    assert listed.status_code == 200
    assert [m["id"] for m in listed.json()["items"]] == [second["id"], first["id"]]
    assert set(listed.json()["items"][0]) == {
        "id",
        "channel",
        "status",
        "segments",
        "error",
        "created_at",
        "sent_at",
    }
    events = sender.get(
        "/v1/audit-events", params={"patient_id": world.patient_id}, headers=world.clinic.headers
    ).json()
    sent = [e for e in events["items"] if e["resource_type"] == "Message"]
    assert {e["action"] for e in sent} == {"create", "read"}
    assert all(e["resource_id"] == world.referral_id for e in sent)


def test_the_contact_detail_is_kept_nowhere(
    sender: TestClient[Litestar],
    make_clinic: MakeClinic,
    peers: Peers,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    phone, address = "+15550104477", "only.here@example.net"
    world = make_world(sender, make_clinic())
    quiet = make_world(sender, make_clinic(), do_not_contact=True)
    send(sender, world, "sms", phone)
    send(sender, world, "email", address)
    peers.gateway.status = 500
    send(sender, world, "sms", phone)
    send(sender, world, "email", "refuse." + address)
    send(sender, quiet, "sms", phone)
    send(sender, quiet, "email", address)
    send(sender, world, "sms", phone + "x")  # refused as invalid
    sender.get(world.messages, headers=world.clinic.headers)
    statuses = [
        m["status"]
        for m in sender.get(world.messages, headers=world.clinic.headers).json()["items"]
    ]
    assert sorted(statuses) == ["failed", "failed", "sent", "sent"]

    async def found_anywhere() -> list[str]:
        engine = create_async_engine(database_url)
        hits = []
        async with engine.connect() as conn:
            columns = await conn.execute(
                sa.text(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND data_type IN "
                    "('text', 'character varying', 'json', 'jsonb', 'ARRAY')"
                )
            )
            for table, column in columns.all():
                for needle in (phone, address, phone.lstrip("+")):
                    query = sa.text(
                        f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE :needle'
                    )
                    if (await conn.execute(query, {"needle": f"%{needle}%"})).scalar_one():
                        hits.append(f"{table}.{column}")
        await engine.dispose()
        return hits

    assert sender.blocking_portal.call(found_anywhere) == []
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    for record in ours:
        text = record.getMessage() + repr(record.__dict__)
        assert phone not in text and address not in text, record.name


def test_a_link_too_long_for_two_segments_is_recorded_failed_and_not_sent(
    database_url: str, peers: Peers, make_clinic: MakeClinic
) -> None:
    peers.clear()
    long_base = PUBLIC_BASE + "/" + "deployment-path/" * 20
    app = create_app(messaging_settings(database_url, peers, public_base_url=long_base))
    with TestClient(app) as client:
        world = make_world(client, make_clinic())
        record = send(client, world, "sms", PHONE).json()
    assert record["status"] == "failed"
    assert record["error"] == "the link and the code alone take more than two SMS segments"
    assert peers.gateway.received == []
