"""The README's five-minute tour, run as written: every curl in its order, with its body.

The tour's shell block is read from README.md, each ``curl`` split as the shell would
(``$H`` is the clinic's token, ``$J`` the JSON content type), and sent to the app of a
clinic that holds the sample directory, as ``make run`` sets up. The two placeholders are
filled from earlier answers, as a reader would: the service id from the screening's first
recommendation, the referral id from the referral just made. Every call must succeed, and
the referral the tour makes must end completed with its outcome.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from litestar import Litestar
from litestar.testing import TestClient

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SEED = ROOT / "deploy" / "seed" / "directory.hsds.json"
SERVICE_PLACEHOLDER = "<a service id from the recommendations>"
REFERRAL_PLACEHOLDER = "<referral id>"


@dataclass
class Curl:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None


def tour_block() -> str:
    text = README.read_text(encoding="utf-8")
    tour = text.split("## A five-minute tour", 1)[1]
    return tour.split("```sh\n", 1)[1].split("\n```", 1)[0]


def tour_commands() -> list[str]:
    """The tour's shell commands, continuation lines joined and a quoted body kept whole
    across its lines."""
    commands, pending = [], ""
    for line in tour_block().replace("\\\n", " ").splitlines(keepends=True):
        pending += line
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # a quoted body goes on to the next line
            continue
        if words:
            commands.append(pending)
        pending = ""
    assert not pending, f"unclosed quote in the tour: {pending}"
    return commands


def curl(command: str, shell: dict[str, dict[str, str]]) -> Curl | None:
    """A curl command as the request it sends (None for any other command)."""
    words = shlex.split(command, comments=True)
    if words[0] != "curl":
        return None
    call = Curl("GET", "")
    rest = iter(words[1:])
    for word in rest:
        if word == "-s":
            continue
        if word == "-X":
            call.method = next(rest)
        elif word == "-H":
            value = next(rest)
            if value in shell:
                call.headers.update(shell[value])
            else:
                name, _, header_value = value.partition(":")
                call.headers[name.strip()] = header_value.strip()
        elif word == "-d":
            call.body = next(rest)
            if call.method == "GET":
                call.method = "POST"
        else:
            assert not word.startswith("-"), f"curl option not understood: {word}"
            call.url = word
    return call


def test_the_tour_runs_as_written_and_follows_a_referral_to_its_outcome(
    client: TestClient[Litestar],
) -> None:
    imported = client.post("/v1/directory/import", json=json.loads(SEED.read_text()))
    assert imported.status_code == 200, imported.text
    token_headers = {"Authorization": client.headers.pop("Authorization")}  # the tour sends $H
    shell = {"$H": token_headers, "$J": {"content-type": "application/json"}}
    filled: dict[str, str] = {}
    referral_id = None
    commands = tour_commands()
    assert commands

    for command in commands:
        for placeholder, value in filled.items():
            command = command.replace(placeholder, value)
        call = curl(command, shell)
        if call is None:
            continue
        unfilled = re.findall(r"<[^>]+>", f"{call.url} {call.body or ''}")
        assert not unfilled, f"nothing earlier in the tour gives {unfilled}"
        parts = urlsplit(call.url)
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        response = client.request(call.method, target, headers=call.headers, content=call.body)
        assert 200 <= response.status_code < 300, (call.method, call.url, response.text)
        if (call.method, parts.path) == ("POST", "/v1/screenings"):
            top = response.json()["recommendations"]["items"][0]
            filled[SERVICE_PLACEHOLDER] = top["service"]["id"]
        if (call.method, parts.path) == ("POST", "/v1/referrals"):
            referral_id = response.json()["id"]
            filled[REFERRAL_PLACEHOLDER] = referral_id

    assert referral_id is not None, "the tour makes no referral"
    followed = client.get(f"/v1/referrals/{referral_id}", headers=token_headers)
    referral = followed.json()
    assert referral["status"] == "completed", referral["history"]
    assert referral["outcome"], "the tour completes the referral without an outcome"
