"""Secrets shown once and stored as prefix + SHA-256 (R5): API tokens, join tokens, endpoint keys.

A secret reads `<label>_<prefix>_<random>`: the prefix finds the row, the hash of the random part
is compared in constant time. The random part has 256 bits, so a plain SHA-256 is enough.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class NewSecret:
    prefix: str
    hash: str
    plaintext: str


def secret_new(label: str) -> NewSecret:
    prefix = secrets.token_hex(6)
    random_part = secrets.token_urlsafe(32)
    return NewSecret(prefix=prefix, hash=secret_hash(random_part), plaintext=f"{label}_{prefix}_{random_part}")


def secret_hash(random_part: str) -> str:
    return hashlib.sha256(random_part.encode()).hexdigest()


def secret_split(plaintext: str, label: str) -> tuple[str, str] | None:
    """(prefix, random part) of a well-formed secret with this label, else None."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != label or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(stored_hash: str, random_part: str) -> bool:
    return hmac.compare_digest(stored_hash, secret_hash(random_part))
