"""Systems' pure rules: what a SMART token request is granted, and the CDS cards' links."""

from __future__ import annotations

import msgspec
import pytest

from service.systems.model import (
    APP_CONTEXTS,
    LAUNCH_PATH,
    Link,
    due_card,
    granted_scopes,
    open_in_belong,
)


def test_granted_scopes_keep_the_order_asked_and_name_each_once() -> None:
    held = frozenset({"screenings:read", "referrals:read", "referrals:write"})
    granted, scopes = granted_scopes(
        "system/Task.rs system/Observation.read system/Task.rs system/Task.cud", held
    )
    assert granted == ["system/Task.rs", "system/Observation.read", "system/Task.cud"]
    assert scopes == {"referrals:read", "screenings:read", "referrals:write"}


def test_granted_scopes_leave_out_what_the_client_does_not_hold_or_belong_cannot_grant() -> None:
    held = frozenset({"screenings:read"})
    granted, scopes = granted_scopes(
        "system/Task.rs system/Patient.rs system/Observation.cud system/Observation.rs", held
    )
    assert granted == ["system/Observation.rs"]
    assert scopes == {"screenings:read"}
    assert granted_scopes("system/Task.rs", held) == ([], set())


def test_open_in_belong_is_a_smart_link_to_the_launch_url_with_its_app_context() -> None:
    link = open_in_belong("https://belong.example.org", "screening", "Open in Belong")
    assert msgspec.to_builtins(link) == {
        "label": "Open in Belong",
        "url": f"https://belong.example.org{LAUNCH_PATH}",
        "type": "smart",
        "appContext": "screening",
    }
    assert LAUNCH_PATH == "/app/launch"
    assert APP_CONTEXTS == ("recommendations", "screening")
    with pytest.raises(ValueError, match="appContext"):
        open_in_belong("https://belong.example.org", "questionnaire", "Open in Belong")


def test_an_absolute_link_carries_no_app_context() -> None:
    link = Link(label="Read more", url="https://belong.example.org/help", type="absolute")
    assert "appContext" not in msgspec.json.decode(msgspec.json.encode(link))


def test_the_due_card_names_the_instruments_and_opens_the_screening_entry() -> None:
    card = due_card("https://belong.example.org", [("ucla-3", "UCLA-3"), ("osss-3", "OSSS-3")], 90)
    body = msgspec.to_builtins(card)
    assert body["links"] == [
        {
            "label": "Open in Belong: enter a screening",
            "url": "https://belong.example.org/app/launch",
            "type": "smart",
            "appContext": "screening",
        }
    ]
    assert "UCLA-3, OSSS-3" in body["detail"] and "90 days" in body["detail"]
    assert "Questionnaire" not in msgspec.json.encode(card).decode()
