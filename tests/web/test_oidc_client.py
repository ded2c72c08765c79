"""The relying party (service/web/oidc.py) against a real OpenID provider (oidc-provider under
Node): the authorization code flow with PKCE end to end, and every refusal."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc.jwk import KeySet

from service.web.oidc import (
    IdentityProvider,
    RelyingParty,
    SecretUnavailable,
    SignInRefused,
    VerifiedIdentity,
    checked_secret_ref,
    display_name,
    resolve_secret,
    role_of,
    verify_id_token,
)
from tests.jwt_keys import public_jwks, rsa_key, sign
from tests.web.conftest import (
    CLIENT_ID,
    REDIRECT_URI,
    OpenIdProvider,
    client_config,
    running_provider,
    sign_in_at_provider,
)


def b64json(part: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def provider_for(op: OpenIdProvider, secret_ref: str, **settings: Any) -> IdentityProvider:
    return IdentityProvider(
        issuer=op.issuer, client_id=CLIENT_ID, secret_ref=secret_ref, **settings
    )


async def id_token_of(rp: RelyingParty, provider: IdentityProvider, login: str) -> tuple[str, str]:
    """A sign-in at the provider as ``login``, exchanged: the id_token (unverified) and the
    request's nonce."""
    request = await rp.authorization_request(provider, REDIRECT_URI)
    back = await asyncio.to_thread(sign_in_at_provider, request.url, login)
    assert back["state"] == request.state
    token = await rp.exchange(
        provider, code=back["code"], code_verifier=request.code_verifier, redirect_uri=REDIRECT_URI
    )
    return token, request.nonce


async def test_signs_in_by_code_and_pkce_and_reads_the_role(
    openid_provider: OpenIdProvider, client_secret_env: str
) -> None:
    rp = RelyingParty()
    provider = provider_for(openid_provider, client_secret_env, scopes=("profile", "email"))
    request = await rp.authorization_request(provider, REDIRECT_URI)

    sent = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
    assert request.url.startswith(f"{openid_provider.issuer}/auth?")
    assert sent["response_type"] == "code"
    assert sent["scope"] == "openid profile email"
    assert sent["code_challenge_method"] == "S256"
    digest = hashlib.sha256(request.code_verifier.encode()).digest()
    assert sent["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert 43 <= len(request.code_verifier) <= 128
    assert len(request.state) >= 22 and len(request.nonce) >= 22  # 128 bits in base64url
    assert sent["state"] == request.state and sent["nonce"] == request.nonce
    assert request.code_verifier not in request.url

    back = await asyncio.to_thread(sign_in_at_provider, request.url, "alice")
    assert back["state"] == request.state
    await rp.check_callback_issuer(provider, back.get("iss"))
    identity = await rp.sign_in(
        provider,
        code=back["code"],
        code_verifier=request.code_verifier,
        nonce=request.nonce,
        redirect_uri=REDIRECT_URI,
    )

    assert identity.issuer == openid_provider.issuer
    assert identity.subject == "alice"
    assert identity.claims["email"] == "alice@clinic.test"
    assert role_of(identity, provider) == "clinician"
    assert display_name(identity) == "Alice Clinician"
    assert display_name(VerifiedIdentity(identity.issuer, "alice", {"sub": "alice"})) is None


async def test_a_code_is_exchanged_only_with_its_verifier_and_once(
    openid_provider: OpenIdProvider, client_secret_env: str
) -> None:
    rp = RelyingParty()
    provider = provider_for(openid_provider, client_secret_env)
    request = await rp.authorization_request(provider, REDIRECT_URI)
    back = await asyncio.to_thread(sign_in_at_provider, request.url, "alice")

    with pytest.raises(SignInRefused, match=r"refused the code \(invalid_grant\)"):
        await rp.exchange(
            provider, code=back["code"], code_verifier="x" * 64, redirect_uri=REDIRECT_URI
        )
    exchange = {
        "code": back["code"],
        "code_verifier": request.code_verifier,
        "redirect_uri": REDIRECT_URI,
    }
    assert await rp.exchange(provider, **exchange)
    with pytest.raises(SignInRefused, match=r"refused the code \(invalid_grant\)"):
        await rp.exchange(provider, **exchange)


async def test_a_wrong_client_secret_is_refused(
    openid_provider: OpenIdProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BELONG_IDP_SECRET_WRONG", "not-the-secret")
    rp = RelyingParty()
    provider = provider_for(openid_provider, "env:BELONG_IDP_SECRET_WRONG")
    request = await rp.authorization_request(provider, REDIRECT_URI)
    back = await asyncio.to_thread(sign_in_at_provider, request.url, "alice")
    with pytest.raises(SignInRefused, match=r"refused the code \(invalid_client\)") as refused:
        await rp.exchange(
            provider,
            code=back["code"],
            code_verifier=request.code_verifier,
            redirect_uri=REDIRECT_URI,
        )
    assert "not-the-secret" not in str(refused.value)


async def test_client_secret_post_and_es256_when_the_provider_says_so(
    client_secret_env: str,
) -> None:
    with running_provider(
        clients=[
            client_config(
                token_endpoint_auth_method="client_secret_post",
                id_token_signed_response_alg="ES256",
            )
        ],
        client_auth_methods=["client_secret_post"],
    ) as op:
        rp = RelyingParty()
        provider = provider_for(op, client_secret_env)
        token, nonce = await id_token_of(rp, provider, "carol")
        identity = await rp.verify(provider, token, nonce=nonce)
    assert b64json(token.split(".")[0])["alg"] == "ES256"
    assert identity.subject == "carol"
    assert role_of(identity, provider) == "coordinator"


async def test_a_wrong_nonce_is_refused(
    openid_provider: OpenIdProvider, client_secret_env: str
) -> None:
    rp = RelyingParty()
    provider = provider_for(openid_provider, client_secret_env)
    token, nonce = await id_token_of(rp, provider, "alice")
    with pytest.raises(SignInRefused, match="nonce"):
        await rp.verify(provider, token, nonce=nonce[:-1] + ("A" if nonce[-1] != "A" else "B"))


async def test_an_id_token_of_another_issuer_is_refused(
    openid_provider: OpenIdProvider, client_secret_env: str
) -> None:
    rp = RelyingParty()
    ours = provider_for(openid_provider, client_secret_env)
    with running_provider() as other:
        theirs = provider_for(other, client_secret_env)
        token, nonce = await id_token_of(rp, theirs, "alice")
        their_keys = await rp._keys(await rp.metadata(other.issuer), fresh=False)

        # Signed by a key the clinic's provider never published: refused, after one more
        # look at its JWKS.
        with pytest.raises(SignInRefused, match="signature does not verify"):
            await rp.verify(ours, token, nonce=nonce)
        # Even verified with the other provider's own keys, its iss is not the clinic's.
        with pytest.raises(SignInRefused, match="another provider"):
            verify_id_token(token, their_keys, ours, nonce=nonce)


async def test_a_redirect_naming_another_issuer_is_refused(
    openid_provider: OpenIdProvider, client_secret_env: str
) -> None:
    rp = RelyingParty()
    provider = provider_for(openid_provider, client_secret_env)
    # The provider names itself in its redirects (RFC 9207): a redirect without iss, or
    # with another, did not come from it.
    for iss in (None, "http://127.0.0.1:1", openid_provider.issuer + "/"):
        with pytest.raises(SignInRefused, match="another provider"):
            await rp.check_callback_issuer(provider, iss)


async def test_an_expired_or_future_id_token_is_refused(
    openid_provider: OpenIdProvider, client_secret_env: str
) -> None:
    rp = RelyingParty()
    provider = provider_for(openid_provider, client_secret_env)
    token, nonce = await id_token_of(rp, provider, "alice")
    claims = b64json(token.split(".")[1])

    verified = await rp.verify(provider, token, nonce=nonce, now=claims["exp"] + 59)
    assert verified.subject == "alice"  # within the leeway
    with pytest.raises(SignInRefused, match="expired"):
        await rp.verify(provider, token, nonce=nonce, now=claims["exp"] + 61)
    with pytest.raises(SignInRefused, match="future"):
        await rp.verify(provider, token, nonce=nonce, now=claims["iat"] - 61)


async def test_a_short_lived_id_token_expires(client_secret_env: str) -> None:
    with running_provider(id_token_ttl=1) as op:
        rp = RelyingParty()
        provider = provider_for(op, client_secret_env)
        token, nonce = await id_token_of(rp, provider, "alice")
        claims = b64json(token.split(".")[1])
        assert claims["exp"] - claims["iat"] == 1
        with pytest.raises(SignInRefused, match="expired"):
            await rp.verify(provider, token, nonce=nonce, now=claims["iat"] + 62)


async def test_a_tampered_id_token_is_refused(
    openid_provider: OpenIdProvider, client_secret_env: str
) -> None:
    rp = RelyingParty()
    provider = provider_for(openid_provider, client_secret_env)
    token, nonce = await id_token_of(rp, provider, "alice")
    header, payload, signature = token.split(".")

    claims = b64json(payload)
    claims["belong_role"] = "admin"
    promoted = f"{header}.{b64(claims)}.{signature}"
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    for tampered in (promoted, f"{header}.{payload}.{flipped}"):
        with pytest.raises(SignInRefused, match="signature does not verify"):
            await rp.verify(provider, tampered, nonce=nonce)

    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    with pytest.raises(SignInRefused, match="alg 'none' is not accepted"):
        await rp.verify(provider, unsigned, nonce=nonce)
    hs256 = f"{b64({**b64json(header), 'alg': 'HS256'})}.{payload}.{signature}"
    with pytest.raises(SignInRefused, match="alg 'HS256' is not accepted"):
        await rp.verify(provider, hs256, nonce=nonce)


async def test_an_id_token_for_another_client_is_refused(
    openid_provider: OpenIdProvider, client_secret_env: str
) -> None:
    rp = RelyingParty()
    provider = provider_for(openid_provider, client_secret_env)
    token, nonce = await id_token_of(rp, provider, "alice")
    another = IdentityProvider(openid_provider.issuer, "another-client", client_secret_env)
    with pytest.raises(SignInRefused, match="not meant for Belong"):
        await rp.verify(another, token, nonce=nonce)


async def test_keys_are_kept_and_read_again_for_a_new_kid(client_secret_env: str) -> None:
    rp = RelyingParty()
    with running_provider() as first:
        provider = provider_for(first, client_secret_env)
        first_token, first_nonce = await id_token_of(rp, provider, "alice")
        await rp.verify(provider, first_token, nonce=first_nonce)
    # The provider is gone: its discovery document and keys are still held.
    held = await rp.verify(provider, first_token, nonce=first_nonce)
    assert held.subject == "alice"

    # The same issuer again, with keys of its own (as after a key rotation).
    with running_provider(port=first.port) as second:
        assert second.issuer == provider.issuer
        second_token, second_nonce = await id_token_of(rp, provider, "carol")
        assert (
            b64json(second_token.split(".")[0])["kid"] != b64json(first_token.split(".")[0])["kid"]
        )
        identity = await rp.verify(provider, second_token, nonce=second_nonce)
    assert identity.subject == "carol"


async def test_a_provider_whose_document_names_another_issuer_is_refused(
    openid_provider: OpenIdProvider, client_secret_env: str
) -> None:
    rp = RelyingParty()
    # The same server under another name: its document says 127.0.0.1, not localhost.
    provider = IdentityProvider(
        f"http://localhost:{openid_provider.port}", CLIENT_ID, client_secret_env
    )
    with pytest.raises(SignInRefused, match="names another issuer"):
        await rp.authorization_request(provider, REDIRECT_URI)
    trailing = IdentityProvider(openid_provider.issuer + "/", CLIENT_ID, client_secret_env)
    with pytest.raises(SignInRefused, match="names another issuer"):
        await rp.authorization_request(trailing, REDIRECT_URI)


@pytest.fixture
def plain_pkce_provider() -> Iterator[str]:
    """A loopback server whose discovery document offers PKCE with ``plain`` only."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
            body = json.dumps(
                {
                    "issuer": issuer,
                    "authorization_endpoint": f"{issuer}/auth",
                    "token_endpoint": f"{issuer}/token",
                    "jwks_uri": f"{issuer}/jwks",
                    "response_types_supported": ["code"],
                    "code_challenge_methods_supported": ["plain"],
                }
            ).encode()
            self.send_response(200 if self.path == "/.well-known/openid-configuration" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_a_provider_without_s256_is_refused(
    plain_pkce_provider: str, client_secret_env: str
) -> None:
    provider = IdentityProvider(plain_pkce_provider, CLIENT_ID, client_secret_env)
    with pytest.raises(SignInRefused, match="PKCE with S256"):
        await RelyingParty().authorization_request(provider, REDIRECT_URI)


async def test_an_issuer_must_be_https_off_the_loopback() -> None:
    provider = IdentityProvider("http://idp.clinic.test/realms/belong", CLIENT_ID, "env:X")
    with pytest.raises(SignInRefused, match="https"):
        await RelyingParty().metadata(provider.issuer)


async def test_a_missing_or_unmapped_role_is_refused(
    openid_provider: OpenIdProvider, client_secret_env: str
) -> None:
    rp = RelyingParty()
    provider = provider_for(openid_provider, client_secret_env)
    token, nonce = await id_token_of(rp, provider, "bob")
    identity = await rp.verify(provider, token, nonce=nonce)
    assert "belong_role" not in identity.claims
    with pytest.raises(SignInRefused, match="no Belong role in the belong_role claim"):
        role_of(identity, provider)

    unmapped = provider_for(openid_provider, client_secret_env, role_map={"doctor": "clinician"})
    alice_token, alice_nonce = await id_token_of(rp, provider, "alice")
    alice = await rp.verify(provider, alice_token, nonce=alice_nonce)
    with pytest.raises(SignInRefused, match="no Belong role"):
        role_of(alice, unmapped)


async def test_a_list_of_roles_maps_to_the_most_able(
    openid_provider: OpenIdProvider, client_secret_env: str
) -> None:
    """Entra ID's app roles: a ``roles`` list, values of the clinic's own naming."""
    rp = RelyingParty()
    provider = provider_for(
        openid_provider,
        client_secret_env,
        role_claim="roles",
        role_map={"Belong.Reader": "clinician", "Belong.Admin": "admin"},
    )
    token, nonce = await id_token_of(rp, provider, "erin")
    identity = await rp.verify(provider, token, nonce=nonce)
    assert identity.claims["roles"] == ["Belong.Reader", "Belong.Admin"]
    assert role_of(identity, provider) == "admin"


def test_a_role_in_a_nested_claim() -> None:
    """Keycloak's realm roles: ``realm_access.roles``, unless a claim has that very name."""
    keycloak = IdentityProvider(
        "https://idp.test/realms/x", "belong", None, role_claim="realm_access.roles"
    )
    nested = VerifiedIdentity(
        "https://idp.test/realms/x", "s", {"realm_access": {"roles": ["offline", "coordinator"]}}
    )
    assert role_of(nested, keycloak) == "coordinator"
    named = VerifiedIdentity("https://idp.test/realms/x", "s", {"realm_access.roles": "admin"})
    assert role_of(named, keycloak) == "admin"


def test_secret_references(tmp_path: Any) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    assert resolve_secret(f"file:{secret_file}") == "from-a-file"
    assert resolve_secret("env:BELONG_X", {"BELONG_X": "from-env"}) == "from-env"
    with pytest.raises(SecretUnavailable, match="BELONG_Y is not set"):
        resolve_secret("env:BELONG_Y", {})
    with pytest.raises(SecretUnavailable, match="cannot be read"):
        resolve_secret(f"file:{tmp_path / 'absent'}")
    with pytest.raises(SecretUnavailable, match="env:VARIABLE or file:/path"):
        resolve_secret("the-secret-itself")

    assert checked_secret_ref("env:BELONG_IDP_SECRET_DEMO") == "env:BELONG_IDP_SECRET_DEMO"
    for bad in ("plain-secret", "env:", "env:1BAD", "file:relative/path", "vault:x"):
        with pytest.raises(ValueError):
            checked_secret_ref(bad)


async def test_a_missing_secret_refuses_before_the_code_is_sent(
    openid_provider: OpenIdProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BELONG_IDP_SECRET_UNSET", raising=False)
    provider = provider_for(openid_provider, "env:BELONG_IDP_SECRET_UNSET")
    with pytest.raises(SecretUnavailable, match="BELONG_IDP_SECRET_UNSET is not set"):
        await RelyingParty().exchange(
            provider, code="c", code_verifier="v" * 43, redirect_uri=REDIRECT_URI
        )


def test_several_audiences_need_belong_as_the_authorized_party() -> None:
    """oidc-provider names one audience; an id_token naming several is signed here."""
    key = rsa_key("several-audiences")
    keys = KeySet.import_key_set(public_jwks(key))
    provider = IdentityProvider("https://idp.test", CLIENT_ID, None)
    now = int(time.time())
    base = {"iss": "https://idp.test", "sub": "s", "nonce": "n", "iat": now, "exp": now + 60}

    def verified(**claims: Any) -> str:
        token = sign({**base, **claims}, key, "RS256")
        return verify_id_token(token, keys, provider, nonce="n").subject

    assert verified(aud=[CLIENT_ID, "api"], azp=CLIENT_ID) == "s"
    assert verified(aud=CLIENT_ID) == "s"
    for claims in ({"aud": [CLIENT_ID, "api"]}, {"aud": [CLIENT_ID, "api"], "azp": "api"}):
        with pytest.raises(SignInRefused, match="another client"):
            verified(**claims)


async def test_the_provider_is_read_again_when_its_documents_are_stale(
    client_secret_env: str,
) -> None:
    clock = [0.0]
    rp = RelyingParty(cache_seconds=300, monotonic=lambda: clock[0])
    with running_provider() as op:
        provider = provider_for(op, client_secret_env)
        token, nonce = await id_token_of(rp, provider, "alice")
        await rp.verify(provider, token, nonce=nonce)
    clock[0] = 299.0
    assert (await rp.verify(provider, token, nonce=nonce)).subject == "alice"
    clock[0] = 301.0
    with pytest.raises(SignInRefused, match="discovery document could not be reached"):
        await rp.verify(provider, token, nonce=nonce)


async def test_a_public_client_signs_in_with_pkce_alone() -> None:
    public = {"client_id": CLIENT_ID, "redirect_uris": [REDIRECT_URI]}
    with running_provider(
        clients=[{**public, "token_endpoint_auth_method": "none"}],
        client_auth_methods=["none", "client_secret_basic"],
    ) as op:
        rp = RelyingParty()
        provider = IdentityProvider(op.issuer, CLIENT_ID, None)
        token, nonce = await id_token_of(rp, provider, "alice")
        assert (await rp.verify(provider, token, nonce=nonce)).subject == "alice"
    with running_provider(client_auth_methods=["client_secret_basic"]) as op:
        provider = IdentityProvider(op.issuer, CLIENT_ID, None)
        with pytest.raises(SignInRefused, match="client without a secret"):
            await RelyingParty().exchange(
                provider, code="c", code_verifier="v" * 43, redirect_uri=REDIRECT_URI
            )
