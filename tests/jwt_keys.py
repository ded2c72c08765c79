"""Test keys and JWT signing for SMART Backend Services and CDS Hooks tests.

Real keys (RSA 2048 for RS384, P-384 for ES384) made once per run, signed with joserfc;
plus the hostile tokens a server must refuse (``alg: none``, HMAC).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey


@cache
def rsa_key(kid: str = "rsa-1") -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"})


@cache
def ec_key(kid: str = "ec-1") -> ECKey:
    return ECKey.generate_key("P-384", parameters={"kid": kid, "use": "sig", "alg": "ES384"})


def public_jwks(*keys: RSAKey | ECKey) -> dict[str, Any]:
    return KeySet(list(keys)).as_dict(private=False)


def sign(claims: dict[str, Any], key: RSAKey | ECKey, alg: str, **header: Any) -> str:
    return jwt.encode(
        {"alg": alg, "typ": "JWT", "kid": key.kid, **header}, claims, key, algorithms=[alg]
    )


def claims(
    iss: str, aud: str, *, lifetime: int = 240, sub: str | None = None, **extra: Any
) -> dict[str, Any]:
    now = int(time.time())
    found: dict[str, Any] = {
        "iss": iss,
        "aud": aud,
        "iat": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
    }
    if sub is not None:
        found["sub"] = sub
    found.update(extra)
    return {k: v for k, v in found.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims_: dict[str, Any]) -> str:
    """``alg: none``: no signature at all."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims_).encode())}."


def hmac_signed(
    claims_: dict[str, Any], secret: bytes, alg: str = "HS256", kid: str | None = None
) -> str:
    header_fields = {"alg": alg, "typ": "JWT"}
    if kid:
        header_fields["kid"] = kid
    header = _b64(json.dumps(header_fields).encode())
    body = _b64(json.dumps(claims_).encode())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}[alg]
    signature = hmac.new(secret, f"{header}.{body}".encode(), digest).digest()
    return f"{header}.{body}.{_b64(signature)}"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file only its owner can read (0600 from its creation on, so
    the key is never readable by others, whatever the umask); an older file is replaced."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)


def _main(argv: list[str] | None = None) -> int:
    """Try it by hand against `make run`:

    python -m tests.jwt_keys keygen var/demo-keys            # private.json + jwks.json
    python -m tests.jwt_keys sign var/demo-keys/private.json ISS AUD [--sub]
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.jwt_keys")
    actions = parser.add_subparsers(dest="action", required=True)
    keygen = actions.add_parser("keygen", help="a P-384 key: private.json and public jwks.json")
    keygen.add_argument("folder")
    signer = actions.add_parser("sign", help="print an ES384 JWT (5 minutes, fresh jti)")
    signer.add_argument("private")
    signer.add_argument("iss")
    signer.add_argument("aud")
    signer.add_argument("--sub", action="store_true", help="sub = iss (SMART assertions)")
    args = parser.parse_args(argv)
    if args.action == "keygen":
        folder = Path(args.folder)
        folder.mkdir(parents=True, exist_ok=True)
        key = ECKey.generate_key("P-384", parameters={"kid": f"demo-{uuid.uuid4().hex[:8]}"})
        _write_private(folder / "private.json", json.dumps(key.as_dict(private=True)))
        (folder / "jwks.json").write_text(json.dumps(public_jwks(key), indent=2))
        print(folder / "jwks.json")
        return 0
    key = ECKey.import_key(json.loads(Path(args.private).read_text()))
    print(sign(claims(args.iss, args.aud, sub=args.iss if args.sub else None), key, "ES384"))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
