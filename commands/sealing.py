"""Secret values of command jobs (and labs' Jupyter tokens), sealed at rest with studio.sealing.

The purpose keeps the key these values were always sealed with: sha256("studio command-job
secrets\0" + SECRET_KEY), so values sealed before studio.sealing existed still open.
"""

from studio import sealing

PURPOSE = "command-job secrets"


def seal(value: str) -> str:
    return sealing.seal(value, purpose=PURPOSE)


def unseal(token: str) -> str:
    """The value; raises ValueError when the key changed since it was sealed."""
    return sealing.unseal(token, purpose=PURPOSE)
