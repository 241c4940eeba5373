"""
Signing consent receipts (JWS, RFC 7515) and checking them.

A signed receipt is one JSON document: the receipt itself, readable as it is, and a compact JWS
whose payload is that same receipt. `receipt_verify` checks the signature with the published
key set (/.well-known/jwks.json) and that the readable copy says exactly what was signed, so a
receipt changed after issue fails however it was changed.

The key is RECEIPT_SIGNING_KEY (a PEM, or the path of one). In development (DEBUG, no key set)
a key is made once and kept in var/; with DEBUG off a system check refuses to run without one.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

SIGNED_RECEIPT_FORMATS = {
    # format name: (the JWS "typ", the JWS "cty": what the payload is)
    "kantara": ("JWT", "json"),
    "iso27560": ("JOSE", "ld+json"),
}
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


class ReceiptInvalid(Exception):
    """A receipt that does not verify; the message says why, for the person who holds it."""


@dataclass(frozen=True)
class SigningKey:
    key: ECKey | RSAKey | OKPKey
    algorithm: str
    kid: str

    def public_jwk(self) -> dict[str, Any]:
        return self.key.as_dict(private=False, kid=self.kid, use="sig", alg=self.algorithm)

    def public_pem(self) -> str:
        return self.key.as_pem(private=False).decode("ascii")


def _pem_bytes(value: str) -> bytes:
    if "-----BEGIN" in value:
        # An environment variable often carries the PEM's line breaks as "\n".
        return value.replace("\\n", "\n").encode("ascii")
    path = Path(value).expanduser()
    if not path.is_file():
        raise ImproperlyConfigured(f"RECEIPT_SIGNING_KEY is neither a PEM nor the path of a file: {value[:60]!r}")
    return path.read_bytes()


def _signing_key_from_pem(pem: bytes) -> SigningKey:
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise ImproperlyConfigured(f"RECEIPT_SIGNING_KEY is not an unencrypted PEM private key ({error}).") from None
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < 2048:
            raise ImproperlyConfigured("RECEIPT_SIGNING_KEY: an RSA key must have at least 2048 bits.")
        key: ECKey | RSAKey | OKPKey = RSAKey.import_key(pem)
        algorithm = "RS256"
    elif isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name in _EC_ALGORITHMS:
        key = ECKey.import_key(pem)
        algorithm = _EC_ALGORITHMS[private.curve.name]
    elif isinstance(private, ed25519.Ed25519PrivateKey):
        key = OKPKey.import_key(pem)
        algorithm = "EdDSA"
    else:
        raise ImproperlyConfigured("RECEIPT_SIGNING_KEY: use an RSA, EC (P-256, P-384, P-521) or Ed25519 key.")
    # The key's RFC 7638 thumbprint names it: the same key always has the same kid.
    return SigningKey(key=key, algorithm=algorithm, kid=key.thumbprint())


def _development_key_pem(path: Path) -> bytes:
    if not path.is_file():
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        # Readable by its owner only; O_EXCL: two processes starting at once keep the first key.
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
    return path.read_bytes()


@functools.lru_cache(maxsize=4)
def _load(configured: str, development_file: str) -> SigningKey:
    if configured:
        return _signing_key_from_pem(_pem_bytes(configured))
    if development_file:
        return _signing_key_from_pem(_development_key_pem(Path(development_file)))
    raise ImproperlyConfigured(
        "RECEIPT_SIGNING_KEY is not set: consent receipts cannot be signed (see README: Consent receipts)."
    )


def signing_key() -> SigningKey:
    """The key receipts are signed with (read once per setting value)."""
    development_file = getattr(settings, "RECEIPT_DEVELOPMENT_KEY_FILE", None)
    return _load(settings.RECEIPT_SIGNING_KEY, str(development_file or ""))


def published_key_set() -> dict[str, Any]:
    """The JWK set at /.well-known/jwks.json: the public half of the signing key, with its kid."""
    return {"keys": [signing_key().public_jwk()]}


def _canonical(document: dict[str, Any]) -> bytes:
    # Sorted keys, no spaces: the same receipt always gives the same bytes to sign.
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def receipt_sign(receipt: dict[str, Any], *, receipt_format: str) -> dict[str, Any]:
    """The signed receipt: the receipt as it is, and a compact JWS over it."""
    typ, cty = SIGNED_RECEIPT_FORMATS[receipt_format]
    key = signing_key()
    header = {"alg": key.algorithm, "kid": key.kid, "typ": typ, "cty": cty}
    token = jws.serialize_compact(header, _canonical(receipt), key.key, algorithms=[key.algorithm])
    return {"format": receipt_format, "receipt": receipt, "jws": token}


def signed_receipt_json(signed: dict[str, Any]) -> str:
    """As the admin download, the API and the command write it."""
    return json.dumps(signed, indent=2, ensure_ascii=False) + "\n"


def _key_set(jwks: dict[str, Any]) -> KeySet:
    try:
        return KeySet.import_key_set(jwks)  # type: ignore[arg-type]  # a JSON document checked here, not a typed dict
    except (JoseError, ValueError, TypeError, KeyError) as error:
        raise ReceiptInvalid(f"The key set is not a usable JWK set ({error}).") from None


def receipt_verify(document: Any, *, jwks: dict[str, Any] | None = None) -> dict[str, Any]:
    """
    Check a signed receipt (as parsed from its JSON) and return the receipt it carries. `jwks` is
    the issuer's published key set; without it, this site's own key. Raises ReceiptInvalid.
    """
    if not isinstance(document, dict) or not isinstance(document.get("jws"), str):
        raise ReceiptInvalid('This is not a signed consent receipt: it has no "jws" member.')
    keys = _key_set(jwks if jwks is not None else published_key_set())
    token = document["jws"]
    try:
        header = jws.extract_compact(token.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeEncodeError) as error:
        raise ReceiptInvalid(f"The signature (jws) is damaged: it cannot be read ({error}).") from None
    algorithms = sorted({str(k.alg) for k in keys.keys if k.alg} or {"ES256", "RS256", "EdDSA"})
    if header.get("alg") not in algorithms:
        raise ReceiptInvalid(f"The receipt is signed with {header.get('alg')!r}, which the key set does not use.")
    if header.get("kid") and not any(k.kid == header["kid"] for k in keys.keys):
        raise ReceiptInvalid(f"No key in the key set has the receipt's key id {header['kid']!r}.")
    try:
        verified = jws.deserialize_compact(token, keys, algorithms=algorithms)
    except JoseError as error:
        raise ReceiptInvalid(
            f"The signature does not match: the receipt was changed after it was issued ({error})."
        ) from None
    try:
        signed = json.loads(verified.payload)
    except ValueError:
        raise ReceiptInvalid("The signed payload is not JSON.") from None
    # Compared as canonical bytes, not as Python values (where 1 == 1.0 == True).
    if "receipt" in document and _canonical(document["receipt"]) != _canonical(signed):
        raise ReceiptInvalid("The receipt does not say what was signed: it was changed after it was issued.")
    declared = document.get("format")
    if declared is not None and SIGNED_RECEIPT_FORMATS.get(declared, (None, None))[0] != header.get("typ"):
        raise ReceiptInvalid(f"The receipt says it is {declared!r}, but it was signed as another format.")
    return signed
