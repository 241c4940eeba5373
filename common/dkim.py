"""
DKIM signatures (RFC 6376, RFC 8463) for every message the site sends.

Configured by DKIM_DOMAIN, DKIM_SELECTOR, DKIM_PRIVATE_KEY (PEM text, or the path of a file
holding it) and DKIM_ALGORITHM (rsa-sha256, or ed25519-sha256). Campaign messages are signed
on their bytes in marketing/smtp.py; everything Django sends (preference links, confirmations,
error mail) by the wrapper backend in common/mail.py.

Which headers are signed: those of SIGNED_HEADERS the message has, and those of
OVERSIGNED_HEADERS once more (an empty instance in h=), so that nobody on the way can add a
second From, Subject or List-Unsubscribe without breaking the signature. RFC 8058 requires
List-Unsubscribe and List-Unsubscribe-Post to be covered for one-click unsubscribe.

Cost, for a 3-5 kB campaign message on this machine: dkimpy as it is takes about 20 ms with a
2048-bit RSA key (its RSA is pure Python, and it parses the PEM key for every message), and
0.5 ms with Ed25519, most of it parsing and canonicalising in Python. Messages whose lines
all end in CRLF (everything the site builds) are therefore signed by `_sign_lean`: the same
relaxed/simple canonicalisation in a few bytes operations, with the key parsed once and the
signature made by OpenSSL (the cryptography package): about 0.1 ms with Ed25519, 1.1 ms with
RSA 2048 (the RSA operation itself). Anything else goes to dkimpy's sign.
The tests verify every signature with dkimpy's own verify.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import time
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")

SIGNED_HEADERS = (
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "Precedence",
)
OVERSIGNED_HEADERS = frozenset(
    ("from", "to", "cc", "subject", "date", "message-id", "list-id", "list-unsubscribe", "list-unsubscribe-post")
)
_SIGNED_LOWER = tuple(name.lower() for name in SIGNED_HEADERS)

# Relaxed headers (a relay that re-folds a header does not break the signature), simple body
# (dkimpy's default, and OpenDKIM's): the body goes out as the exact bytes signed, campaigns
# from marketing/emails.py and Django's mail through common.mail.ExactBytesMessage, and
# relaxed body canonicalisation cost another 0.9 ms a message in dkimpy's regular expressions.
CANONICALIZE = (b"relaxed", b"simple")

_HEADER_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: str
    # For dkimpy: PEM (RSA) or the base64 of the 32-byte Ed25519 seed.
    dkimpy_key: bytes
    private_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def dns_record(self) -> str:
        return dns_record_for(self.private_key)


def dns_record_for(private_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    """The TXT record that publishes the public half of the key (RFC 6376 3.6.1, RFC 8463)."""
    public = private_key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"


def generate_key(algorithm: str = "rsa-sha256", *, rsa_bits: int = 2048) -> tuple[str, str]:
    """A new private key as PEM text and the DNS TXT record of its public key."""
    private_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "ed25519-sha256":
        private_key = ed25519.Ed25519PrivateKey.generate()
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    elif algorithm == "rsa-sha256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    else:
        raise ValueError(f"unknown DKIM algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    return pem.decode("ascii"), dns_record_for(private_key)


def _key_text(value: str) -> bytes:
    """DKIM_PRIVATE_KEY is the PEM itself (newlines may be written as \\n in an env file) or a file's path."""
    value = value.strip()
    if "-----BEGIN" in value:
        return value.replace("\\n", "\n").encode("ascii")
    path = Path(value).expanduser()
    try:
        return path.read_bytes().strip()
    except OSError as error:
        raise ImproperlyConfigured(
            f"DKIM_PRIVATE_KEY is neither a PEM key nor a readable file ({error.strerror or error})."
        ) from error


def load_key(*, domain: str, selector: str, private_key: str, algorithm: str) -> DkimKey:
    """Parse the configured key; ImproperlyConfigured with a clear reason when it cannot be used."""
    algorithm = (algorithm or "rsa-sha256").strip().lower()
    if algorithm not in ALGORITHMS:
        raise ImproperlyConfigured(f"DKIM_ALGORITHM must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}.")
    if not selector:
        raise ImproperlyConfigured("DKIM_SELECTOR is required when DKIM_DOMAIN is set.")
    if not private_key:
        raise ImproperlyConfigured("DKIM_PRIVATE_KEY is required when DKIM_DOMAIN is set.")
    text = _key_text(private_key)
    try:
        key = serialization.load_pem_private_key(text, password=None)
    except (ValueError, TypeError) as error:
        raise ImproperlyConfigured(f"DKIM_PRIVATE_KEY could not be read as an unencrypted PEM key: {error}") from error
    if algorithm == "rsa-sha256":
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ImproperlyConfigured("DKIM_ALGORITHM is rsa-sha256 but DKIM_PRIVATE_KEY is not an RSA key.")
        if key.key_size < 1024:
            raise ImproperlyConfigured("DKIM_PRIVATE_KEY is shorter than 1024 bits; receivers ignore such keys.")
        dkimpy_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    else:
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ImproperlyConfigured("DKIM_ALGORITHM is ed25519-sha256 but DKIM_PRIVATE_KEY is not an Ed25519 key.")
        seed = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        dkimpy_key = base64.b64encode(seed)
    return DkimKey(
        domain=domain.strip().lower(),
        selector=selector.strip(),
        algorithm=algorithm,
        dkimpy_key=dkimpy_key,
        private_key=key,
    )


@functools.lru_cache(maxsize=4)
def _cached_key(domain: str, selector: str, private_key: str, algorithm: str) -> DkimKey:
    return load_key(domain=domain, selector=selector, private_key=private_key, algorithm=algorithm)


def configured_key() -> DkimKey | None:
    """The key from the settings, parsed once per distinct configuration; None when DKIM is off."""
    domain = getattr(settings, "DKIM_DOMAIN", "")
    if not domain:
        return None
    return _cached_key(
        domain,
        getattr(settings, "DKIM_SELECTOR", ""),
        getattr(settings, "DKIM_PRIVATE_KEY", ""),
        getattr(settings, "DKIM_ALGORITHM", "rsa-sha256"),
    )


_WSP_RUN = re.compile(rb"[ \t]+")


def _relaxed_value(value: bytes) -> bytes:
    """RFC 6376 3.4.2 for a value: unfolded, runs of whitespace as one space, trimmed."""
    if b"\r\n" in value:  # in a parsed field every CRLF is a fold
        value = value.replace(b"\r\n", b"")
    if b"\t" in value or b"  " in value:
        value = _WSP_RUN.sub(b" ", value)
    return value.strip(b" \t")


def _crlf_only(text: bytes) -> bool:
    return text.count(b"\n") == text.count(b"\r") == text.count(b"\r\n")


def _parse_headers(head: bytes) -> list[tuple[bytes, bytes]] | None:
    """(lower-case name, raw value) of each field of a CRLF head, folded lines joined; None if malformed."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
            continue
        name, colon, value = line.partition(b":")
        name = name.rstrip(b" \t")
        if not colon or not name or not _FIELD_NAME.fullmatch(name):
            return None
        fields.append((name.lower(), value))
    return fields


_FIELD_NAME = re.compile(rb"[!-9;-~]+")


def _sign_lean(data: bytes, key: DkimKey) -> bytes | None:
    """
    The DKIM-Signature header for a message whose lines all end in CRLF, signed relaxed/simple
    as dkimpy signs it; None when the message is not such bytes (dkimpy signs those).

    Why not dkimpy for these: for a 3-4 kB campaign message dkimpy's parsing,
    canonicalisation and header hashing in Python cost about 0.3-0.5 ms, a quarter of what
    sending the message costs the worker, which is more than a signature may cost (issue 18:
    ed25519 at 90% of the rate without). This is the same canonicalisation (RFC 6376 3.4.2
    and 3.4.3, fields chosen as 5.4.2 says) in a few bytes operations, with OpenSSL (the
    cryptography package) for the signature: about 0.1 ms with ed25519. The tests verify its
    signatures with dkimpy's verify (folded, repeated, oversigned and missing headers, empty
    and blank-ended bodies) and compare the canonical forms with dkimpy's own.
    """
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator or not _crlf_only(head) or not _crlf_only(body):
        return None
    fields = _parse_headers(head)
    if fields is None:
        return None
    stripped = body
    while stripped.endswith(b"\r\n"):
        stripped = stripped[:-2]
    body_hash = base64.b64encode(hashlib.sha256(stripped + b"\r\n").digest())
    # RFC 6376 5.4.2: each name in h= takes the last instance not used yet, from the bottom;
    # a name with none left (the oversigned repeats) contributes nothing.
    by_name: dict[bytes, list[bytes]] = {}
    for name, value in fields:
        by_name.setdefault(name, []).append(value)
    include_headers = _include_headers(by_name.keys())
    hashed = hashlib.sha256()
    for name in include_headers:
        values = by_name.get(name)
        if values:
            hashed.update(name + b":" + _relaxed_value(values.pop()) + b"\r\n")
    tags = b"; ".join(
        [
            _fixed_tags(key.algorithm, key.domain, key.selector),
            b"t=" + str(int(time.time())).encode("ascii"),
            b"\r\n h=" + b" : ".join(include_headers),
            b"\r\n bh=" + body_hash,
            b"\r\n b=",
        ]
    )
    # The signature header itself, its b= empty and without the final CRLF (RFC 6376 3.7).
    hashed.update(b"dkim-signature:" + _relaxed_value(tags))
    digest = hashed.digest()
    if isinstance(key.private_key, ed25519.Ed25519PrivateKey):
        signature = key.private_key.sign(digest)  # RFC 8463: Ed25519 over the SHA-256 hash
    else:
        signature = key.private_key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    encoded = base64.b64encode(signature)
    folded = b"\r\n  ".join(encoded[i : i + 72] for i in range(0, len(encoded), 72))
    return b"DKIM-Signature: " + tags + folded + b"\r\n"


@functools.lru_cache(maxsize=8)
def _fixed_tags(algorithm: str, domain: str, selector: str) -> bytes:
    canonicalization = "/".join(c.decode() for c in CANONICALIZE)
    tags = [
        "v=1",
        f"a={algorithm}",
        f"c={canonicalization}",
        f"d={domain}",
        f"i=@{domain}",
        "q=dns/txt",
        f"s={selector}",
    ]
    return "; ".join(tags).encode("ascii")


def _include_headers(present) -> list[bytes]:
    """The h= list for a message with these (lower-case) header names: the signed ones it has, oversigned twice."""
    names = [name for name in _SIGNED_BYTES if name in present]
    return names + [name for name in names if name in _OVERSIGNED_BYTES]


_SIGNED_BYTES = tuple(name.encode("ascii") for name in _SIGNED_LOWER)
_OVERSIGNED_BYTES = frozenset(name.encode("ascii") for name in OVERSIGNED_HEADERS)


def headers_to_sign(data: bytes) -> list[bytes]:
    """The h= list for this message: the signed headers it has, the oversigned ones twice."""
    head = data.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in data else data.split(b"\n\n", 1)[0]
    present = {match.group(1).lower() for match in _HEADER_NAME.finditer(head)}
    return _include_headers(present)


def sign_message(data: bytes, key: DkimKey | None = None) -> bytes:
    """The message with a DKIM-Signature header in front; unchanged when DKIM is not configured."""
    key = key or configured_key()
    if key is None:
        return data
    header = _sign_lean(data, key)
    if header is None:
        # Not CRLF bytes throughout (nothing the site builds): dkimpy canonicalises those.
        header = dkim.sign(
            data,
            key.selector.encode("ascii"),
            key.domain.encode("ascii"),
            key.dkimpy_key,
            canonicalize=CANONICALIZE,
            include_headers=headers_to_sign(data),
            signature_algorithm=key.algorithm.encode("ascii"),
        )
    return header + data


def domain_of(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2].strip().lower()


def is_aligned(from_domain: str, dkim_domain: str) -> bool:
    """DMARC relaxed alignment: the From domain is the DKIM domain or below it (and vice versa)."""
    from_domain, dkim_domain = from_domain.lower().rstrip("."), dkim_domain.lower().rstrip(".")
    if not from_domain or not dkim_domain:
        return False
    return (
        from_domain == dkim_domain or from_domain.endswith("." + dkim_domain) or dkim_domain.endswith("." + from_domain)
    )
