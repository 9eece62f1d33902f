"""Where the CLI keeps the studio's address, the token and the chosen workspace: a JSON file
readable by its owner only (mode 0600), at $STUDIO_CONFIG or ~/.config/studio/config.json."""

from __future__ import annotations

import json
import os

DEFAULT_PATH = os.path.join("~", ".config", "studio", "config.json")


def config_path() -> str:
    return os.path.expanduser(os.environ.get("STUDIO_CONFIG") or DEFAULT_PATH)


def load() -> dict:
    path = config_path()
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: cannot read the configuration {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def save(data: dict) -> str:
    """Writes the file with mode 0600 (created so, never readable by others even for a moment)."""
    path = config_path()
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o700, exist_ok=True)
    partial = f"{path}.{os.getpid()}.tmp"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
        os.chmod(partial, 0o600)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return path
