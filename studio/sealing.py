"""Secrets sealed at rest with a key derived from SECRET_KEY (Fernet), one key per purpose.

A purpose (e.g. "datastore connection URLs") keeps one kind of secret from being unsealed as
another (commands.sealing: command jobs' secrets and labs' tokens; data: datastore URLs).
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet(purpose: str) -> Fernet:
    digest = hashlib.sha256(f"studio {purpose}\0".encode() + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(value: str, *, purpose: str) -> str:
    return _fernet(purpose).encrypt(value.encode()).decode()


def unseal(token: str, *, purpose: str) -> str:
    """The value; raises ValueError when SECRET_KEY changed since it was sealed."""
    try:
        return _fernet(purpose).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError(f"a sealed secret ({purpose}) cannot be read: SECRET_KEY changed since it was saved") from None
