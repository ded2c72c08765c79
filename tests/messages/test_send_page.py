"""The referral page's "Send the handout link" form: CSRF, Post/Redirect/Get to the page
showing what came of it (sent, failed, suppressed), a wrong recipient named, and the
profile form keeping "do not contact"."""

from __future__ import annotations

import json
import re

from litestar import Litestar
from litestar.testing import TestClient

from tests.conftest import MakeClinic
from tests.messages.conftest import EMAIL, PHONE, Peers, World, make_world
from tests.signed_in import SignedIn, sign_in

SENT = re.compile(r"^/app/referrals/([0-9a-f-]{36})\?message=([0-9a-f-]{36})#handout-link$")


def signed_in(client: TestClient[Litestar], world: World) -> SignedIn:
    return sign_in(client, world.clinic.name, role="coordinator")


def test_the_form_sends_then_the_page_says_it_was_sent(
    sender: TestClient[Litestar], world: World, peers: Peers
) -> None:
    user = signed_in(sender, world)
    page = user.get(f"/app/referrals/{world.referral_id}")
    assert page.status_code == 200
    assert "Send the handout link" in page.text
    assert f'action="/app/referrals/{world.referral_id}/messages"' in page.text
    posted = user.post(
        f"/app/referrals/{world.referral_id}/messages", {"channel": "sms", "to": PHONE}
    )
    assert posted.status_code == 303, posted.text
    location = posted.headers["location"]
    found = SENT.match(location)
    assert found and found.group(1) == world.referral_id
    assert json.loads(peers.gateway.received[0][1])["to"] == PHONE
    shown = user.get(location)
    assert "The handout link was sent by SMS." in shown.text
    assert PHONE not in shown.text and PHONE not in location
    assert "SMS · sent ·" in shown.text


def test_a_failure_and_a_suppressed_message_are_said(
    sender: TestClient[Litestar], make_clinic: MakeClinic, peers: Peers
) -> None:
    world = make_world(sender, make_clinic())
    user = signed_in(sender, world)
    peers.gateway.status = 503
    failed = user.post(
        f"/app/referrals/{world.referral_id}/messages", {"channel": "sms", "to": PHONE}
    )
    assert (
        "could not be sent: the SMS gateway answered 503"
        in user.get(failed.headers["location"]).text
    )
    quiet = make_world(sender, make_clinic(), do_not_contact=True)
    user = signed_in(sender, quiet)
    suppressed = user.post(
        f"/app/referrals/{quiet.referral_id}/messages", {"channel": "email", "to": EMAIL}
    )
    assert suppressed.status_code == 303
    shown = user.get(suppressed.headers["location"]).text
    assert "Nothing was sent: the patient asked not to be contacted." in shown
    assert peers.mailbox.received == []


def test_a_wrong_recipient_is_422_naming_the_field_and_nothing_is_sent(
    sender: TestClient[Litestar], world: World, peers: Peers
) -> None:
    user = signed_in(sender, world)
    for form, words in (
        ({"channel": "sms", "to": "07700 900123"}, "Enter a mobile number with its country code"),
        ({"channel": "email", "to": "nobody"}, "Enter an email address"),
        ({"channel": "fax", "to": PHONE}, "Choose SMS or email"),
    ):
        response = user.post(f"/app/referrals/{world.referral_id}/messages", form)
        assert response.status_code == 422, response.text
        assert words in response.text and 'role="alert"' in response.text
    assert peers.gateway.received == [] and peers.mailbox.received == []


def test_without_the_csrf_token_nothing_is_sent(
    sender: TestClient[Litestar], world: World, peers: Peers
) -> None:
    user = signed_in(sender, world)
    response = user.post(
        f"/app/referrals/{world.referral_id}/messages",
        {"_csrf": "forged", "channel": "sms", "to": PHONE},
    )
    assert response.status_code == 403
    assert peers.gateway.received == []


def test_another_clinics_referral_is_404_and_nothing_is_sent(
    sender: TestClient[Litestar], world: World, make_clinic: MakeClinic, peers: Peers
) -> None:
    stranger = sign_in(sender, make_clinic().name, role="coordinator")
    response = stranger.post(
        f"/app/referrals/{world.referral_id}/messages", {"channel": "sms", "to": PHONE}
    )
    assert response.status_code == 404
    assert peers.gateway.received == []


def test_the_profile_form_keeps_and_sets_do_not_contact(
    sender: TestClient[Litestar], make_clinic: MakeClinic
) -> None:
    world = make_world(sender, make_clinic(), do_not_contact=True)
    user = sign_in(sender, world.clinic.name, role="clinician")
    path = f"/app/patients/{world.patient_id}"
    assert 'name="do_not_contact" value="yes" checked' in user.get(path).text

    def stored() -> bool:
        profile = sender.get(f"/v1/patients/{world.patient_id}", headers=world.clinic.headers)
        return bool(profile.json()["profile"].get("do_not_contact", False))

    saved = user.post(f"{path}/profile", {"languages": "en"})
    assert saved.status_code == 303, saved.text
    assert stored() is False
    saved = user.post(f"{path}/profile", {"languages": "en", "do_not_contact": "yes"})
    assert saved.status_code == 303, saved.text
    assert stored() is True
