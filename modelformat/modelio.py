"""The one saver and loader of model files (rule R2: a model file is data, never code).

``save_model`` writes a skops file and returns its SHA-256, which the caller records. ``load_model``
refuses, in this order: a file whose SHA-256 differs from the recorded one, anything that is not a
skops (zip) file — pickles in particular — and any file naming a type that is not in
``TRUSTED_TYPES``. Only then does skops build the objects, with the same fixed allow-list.

``TRUSTED_TYPES`` (in ``trusted_types``, which imports nothing: a replica serving ONNX needs the
list, not skops) is a reviewed constant: every type our pipelines and ensembles can contain
(``tests/ml/test_modelio.py`` trains each algorithm and each ensemble kind and checks that they
load). It is never derived from the file being loaded. When a new algorithm or transformer is
added, its types are added here after review.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

from .digest import sha256_file
from .trusted_types import TRUSTED_TYPES

# How to bring a pickled model to the studio: said wherever a pickle is refused.
PICKLE_ADVICE = (
    "Pickle-based models are refused: loading one runs whatever code it holds. Save the model with "
    "skops (skops.io.dump(model, 'model.skops')) or export it to ONNX (skl2onnx.to_onnx(model, X[:1]), "
    "or mlflow.onnx.save_model(onnx_model, 'model') then mlflow.log_artifacts('model', 'model')) and "
    "register that."
)


class ModelFileError(Exception):
    """A model file that must not be loaded."""


class ModelIntegrityError(ModelFileError):
    """The file's SHA-256 is not the one recorded when it was written."""


class UntrustedModelError(ModelFileError):
    """The file is not a skops file, or names types outside the allow-list."""


def _dump_compact(model, path: str) -> None:
    """``skops.io.dump`` with the schema written without indentation.

    skops writes ``schema.json`` with ``indent=2``, and an indented ``json.dumps`` runs in pure
    Python: for an ensemble of forests that is 10 s and 85 MB of JSON where the compact form takes
    under a second. The file is the same skops format (skops reads it with ``json.loads``), and
    ``tests/ml/test_modelio.py`` loads every kind of model back through ``skops.io.load``.
    """
    # deferred: skops imports all of scikit-learn (~1.5 s), which a web process reading no model file does without
    import skops
    from skops.io._persist import SaveContext, get_state  # the steps of skops.io._persist._save

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        context = SaveContext(zip_file=archive)
        state = get_state(model, context)
        context.clear_memo()
        state["protocol"] = context.protocol
        state["_skops_version"] = skops.__version__
        archive.writestr("schema.json", json.dumps(state, separators=(",", ":")))


def save_model(model, path: str | Path) -> str:
    """Write ``model`` as a skops file at ``path`` (atomically) and return its SHA-256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".skops")
    os.close(fd)
    try:
        _dump_compact(model, tmp)
        unsafe = sorted(model_file_types(Path(tmp).read_bytes()) - TRUSTED_TYPES)
        if unsafe:
            raise UntrustedModelError(f"refusing to save a model with types outside the allow-list: {unsafe}")
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return digest


def is_pickle(data: bytes) -> bool:
    # protocol 2+ starts with PROTO (0x80); protocols 0/1 usually start with "(", "c", "]" or "}"
    return data[:1] == b"\x80" or data[:1] in (b"(", b"c", b"]", b"}", b"N")


def model_file_types(data: bytes) -> set[str]:
    """Every ``module.name`` a skops file refers to (objects, functions, types), from its schema."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UntrustedModelError(f"not a skops model file ({exc.__class__.__name__})") from None
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            module, name = node.get("__module__"), node.get("__class__")
            if isinstance(module, str) and isinstance(name, str):
                found.add(f"{module}.{name}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def load_model(path: str | Path, expected_sha256: str):
    """Load a model file written by ``save_model``; raises a ModelFileError subclass if unsafe."""
    data = Path(path).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if not expected_sha256 or not hmac.compare_digest(actual, expected_sha256.lower()):
        raise ModelIntegrityError(f"model file SHA-256 mismatch: expected {expected_sha256}, got {actual}")
    if not data.startswith(b"PK\x03\x04"):
        if is_pickle(data):
            raise UntrustedModelError("pickle files are refused: a model file must be a skops file")
        raise UntrustedModelError("not a skops model file")
    unsafe = sorted(model_file_types(data) - TRUSTED_TYPES)
    if unsafe:
        raise UntrustedModelError(f"model file refers to types outside the allow-list: {unsafe}")
    import skops.io as sio  # deferred: as in _dump_compact

    try:
        return sio.loads(data, trusted=sorted(TRUSTED_TYPES))
    except sio.exceptions.UntrustedTypesFoundException as exc:
        raise UntrustedModelError(str(exc)) from None
