"""The studio's one file digest. It is defined in the model format package (the lowest layer, which
needs it too and may import nothing above it); the apps import it from here."""

from modelformat.digest import sha256_file

__all__ = ["sha256_file"]
