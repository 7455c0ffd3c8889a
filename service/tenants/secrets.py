"""Credentials shown once and stored hashed.

A credential is `<kind>_<prefix>_<secret>`: the prefix finds the row, the SHA-256
of the whole string proves it. The secret is 256 random bits, so a fast hash is
enough: there is nothing to brute-force that a slow hash would protect.
"""
import hashlib
import hmac
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class IssuedSecret:
    plaintext: str
    prefix: str
    digest: str


def issue(kind: str) -> IssuedSecret:
    prefix = secrets.token_hex(6)
    plaintext = f"{kind}_{prefix}_{secrets.token_urlsafe(32)}"
    return IssuedSecret(plaintext, prefix, digest(plaintext))


def digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def split(plaintext: str, kind: str) -> str | None:
    """The prefix of a well-formed credential of `kind`, else None."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != kind or len(parts[1]) != 12:
        return None
    return parts[1]


def matches(plaintext: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(plaintext), stored_digest)
