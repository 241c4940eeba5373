"""
DKIM signatures (RFC 6376) for every message the site sends, made with dkimpy.

Configured by DKIM_DOMAIN, DKIM_SELECTOR, DKIM_PRIVATE_KEY (PEM text, or the path of a file
holding it) and DKIM_ALGORITHM (rsa-sha256, or ed25519-sha256). Campaign messages are signed
on their bytes in marketing/smtp.py; everything Django sends (preference links, confirmations,
error mail) by the wrapper backend in common/mail.py.

Which headers are signed: those of SIGNED_HEADERS the message has, and those of
OVERSIGNED_HEADERS once more (an empty instance in h=), so that nobody on the way can add a
second From, Subject or List-Unsubscribe without breaking the signature. RFC 8058 requires
List-Unsubscribe and List-Unsubscribe-Post to be covered for one-click unsubscribe.

Cost, for a 5 kB campaign message on this machine: dkimpy as it is takes about 20 ms with a
2048-bit RSA key (its RSA is pure Python, and it parses the PEM key for every message), 50
messages per second per core. Here the RSA signature is made by OpenSSL (the cryptography
package) with the key parsed once, and the body canonicalised "simple": 1.6 ms a message in
all (RSA), 1.2 ms (Ed25519 by PyNaCl), most of it dkimpy's parsing and canonicalisation.
The tests verify every signature with dkimpy's own verify.
"""

from __future__ import annotations

import base64
import functools
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


class _Signer(dkim.DKIM):
    """
    dkimpy's DKIM whose RSA signature is made by OpenSSL. sign_rsa and gen_header are dkimpy
    1.1.8's sign and gen_header without what OpenSSL makes unneeded: parsing the PEM key again
    for every message (0.75 ms of ASN.1 in Python) and the pure-Python RSA (20 ms). Pinned: a
    dkimpy upgrade must be checked against this copy; the tests verify with dkimpy's own verify.
    """

    openssl_key: rsa.RSAPrivateKey | None = None

    def sign_rsa(self, *, selector: bytes, domain: bytes, include_headers: list[bytes]) -> bytes:
        canon_policy = dkim.CanonicalizationPolicy.from_c_value(b"/".join(CANONICALIZE))
        include_headers = [name.lower() for name in include_headers]
        if b"from" not in include_headers:
            raise dkim.ParameterError("The From header field MUST be signed")
        self.include_headers = tuple(include_headers)
        self.hasher = dkim.HASH_ALGORITHMS[self.signature_algorithm]
        body_hash = self.hasher()
        body_hash.update(canon_policy.canonicalize_body(self.body))
        fields = [
            (b"v", b"1"),
            (b"a", self.signature_algorithm),
            (b"c", canon_policy.to_c_value()),
            (b"d", domain),
            (b"i", b"@" + domain),
            (b"q", b"dns/txt"),
            (b"s", selector),
            (b"t", str(int(time.time())).encode("ascii")),
            (b"h", b" : ".join(include_headers)),
            (b"bh", base64.b64encode(body_hash.digest())),
            # b= folds onto a line of its own, as dkimpy does (so refolding keeps the other tags).
            (b"b", b"0" * 60),
        ]
        self.domain, self.selector = domain, selector
        return b"DKIM-Signature: " + self.gen_header(fields, include_headers, canon_policy, b"DKIM-Signature", None)

    def gen_header(self, fields, include_headers, canon_policy, header_name, pk, standardize=False):
        if self.openssl_key is None:
            return super().gen_header(fields, include_headers, canon_policy, header_name, pk, standardize)
        header_value = b"; ".join(b"=".join(x) for x in fields)
        header_value = dkim.fold(header_value, namelen=len(header_name), linesep=b"\r\n")
        header_value = dkim.RE_BTAG.sub(b"\\1", header_value)
        header = (header_name, b" " + header_value)
        hasher = dkim.HashThrough(self.hasher(), False)
        headers = canon_policy.canonicalize_headers(self.headers)
        self.signed_headers = dkim.hash_headers(hasher, canon_policy, headers, include_headers, header, dict(fields))
        signature = self.openssl_key.sign(hasher.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        index = next(i for i in range(len(fields)) if fields[i][0] == b"b")
        fields[index] = (b"b", base64.b64encode(signature))
        header_value = b"; ".join(b"=".join(x) for x in fields) + self.linesep
        return dkim.fold(header_value, namelen=len(header_name), linesep=self.linesep)


def headers_to_sign(data: bytes) -> list[bytes]:
    """The h= list for this message: the signed headers it has, the oversigned ones twice."""
    head = data.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in data else data.split(b"\n\n", 1)[0]
    present = {match.group(1).decode("ascii").lower() for match in _HEADER_NAME.finditer(head)}
    names = [name for name in _SIGNED_LOWER if name in present]
    return [name.encode("ascii") for name in names + [name for name in names if name in OVERSIGNED_HEADERS]]


def sign_message(data: bytes, key: DkimKey | None = None) -> bytes:
    """The message with a DKIM-Signature header in front; unchanged when DKIM is not configured."""
    key = key or configured_key()
    if key is None:
        return data
    signer = _Signer(data, signature_algorithm=key.algorithm.encode("ascii"))
    if key.algorithm == "rsa-sha256":
        signer.openssl_key = key.private_key  # type: ignore[assignment]
        selector, domain = key.selector.encode("ascii"), key.domain.encode("ascii")
        return signer.sign_rsa(selector=selector, domain=domain, include_headers=headers_to_sign(data)) + data
    header = signer.sign(
        key.selector.encode("ascii"),
        key.domain.encode("ascii"),
        key.dkimpy_key,
        canonicalize=CANONICALIZE,
        include_headers=headers_to_sign(data),
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
