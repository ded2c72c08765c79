"""Systems' pure rules: what a SMART token request is granted."""

from __future__ import annotations

from service.systems.model import granted_scopes


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
