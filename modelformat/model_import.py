"""Models made elsewhere, made servable (pure: no Django): ONNX files, MLflow model folders, signatures.

* ``read_folder`` / ``ArchiveFolder`` / ``DiskFolder``: an MLflow model folder, uploaded as a .zip or
  .tar.gz, or logged as a run's artifacts. Members are read by name, never extracted: links, devices
  and paths with ``..`` are never read, and every read is capped on the bytes actually decompressed.
* ``mlflow_model_file``: which file of an MLflow model to serve, from its ``MLmodel`` YAML. The
  ``onnx`` flavour and the ``sklearn`` flavour saved with skops are taken; pickle-based flavours
  (sklearn saved as a pickle, python_function models with pickles) are refused with ``PICKLE_ADVICE``.
* ``signature_from_columns``: a studio signature from a list of ``{name, type}`` (given by a user,
  or MLflow's column signature mapped by ``mlflow_signature_columns``).
* ``onnx_prepare``: an ONNX classifier rewritten into the shape the studio's predictor feeds
  (``onnx_export.onnx_feed``): one input per signature column named as the column (matched by name,
  also as skl2onnx spells names that are not identifiers: "mean radius" → "mean_radius"; a single
  ``[rows, k]`` number input is fed by k number columns), integer inputs fed as float64 and cast
  in the graph, and one ``probabilities`` output (float64) in the order of the class labels read
  from the graph (ZipMap or the classifier node). A model without class labels is refused: the
  studio serves classifiers.
"""

from __future__ import annotations

import json
import re
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from .modelio import PICKLE_ADVICE
from .onnx_checks import refers_to_external_data
from .signature import CLASSIFICATION, REGRESSION, SIGNATURE_VERSION, Signature, json_labels

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".pt", ".pth")
MAX_MLMODEL_BYTES = 1024 * 1024
MAX_MEMBERS = 10_000
# What a .tar.gz may unpack to in all: walking its members decompresses every one of them.
MAX_UNPACKED_BYTES = 4 * 1024**3
PROBABILITIES = "probabilities"
PREDICTIONS = "predictions"  # a regressor's output, rows × 1
FEED_METADATA = "studio_feed"  # as onnx_export.FEED_METADATA

# A given signature type → (semantic type, pandas dtype the payload is cast to).
COLUMN_TYPES = {
    "numeric": ("numeric", "float64"),
    "integer": ("integer", "float64"),
    "boolean": ("boolean", "object"),
    "categorical": ("categorical", "object"),
    "text": ("text", "object"),
    "identifier": ("identifier", "object"),
    "datetime": ("datetime", "datetime64[us]"),
}
# MLflow's column types (mlflow.types.DataType) → the studio's.
MLFLOW_TYPES = {
    "double": "numeric",
    "float": "numeric",
    "long": "integer",
    "integer": "integer",
    "boolean": "boolean",
    "string": "categorical",
    "datetime": "datetime",
}


class ImportRefused(ValueError):
    """A model file the studio will not register; ``field`` names the form field at fault."""

    def __init__(self, message: str, field: str = "file"):
        super().__init__(message)
        self.field = field


# --- Signatures -------------------------------------------------------------------------------
def signature_from_columns(columns, *, classes=None, target=None, task: str = CLASSIFICATION) -> dict:
    """A studio signature from ``[{"name": ..., "type": ...}]`` (types: ``COLUMN_TYPES``); a
    regression's says so (``task``, no classes, a number out)."""
    if not isinstance(columns, list) or not columns:
        raise ImportRefused("A signature is a non-empty list of {name, type} objects.", "signature")
    out, seen = [], set()
    for position, item in enumerate(columns, 1):
        name = item.get("name") if isinstance(item, dict) else None
        kind = item.get("type", "numeric") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ImportRefused(f"Signature column {position} needs a name (1–200 characters).", "signature")
        if kind not in COLUMN_TYPES:
            known = ", ".join(COLUMN_TYPES)
            raise ImportRefused(f"Signature column {name!r} has the type {kind!r}; use one of {known}.", "signature")
        if name in seen:
            raise ImportRefused(f"The signature names the column {name!r} twice.", "signature")
        seen.add(name)
        semantic, dtype = COLUMN_TYPES[kind]
        out.append({"name": name, "type": semantic, "dtype": dtype, "nullable": True, "required": True})
    signature = {
        "version": SIGNATURE_VERSION,
        "columns": out,
        "target": target,
        "classes": json_labels(classes) if classes is not None else None,
    }
    if task == REGRESSION:
        signature.update(task=REGRESSION, classes=[], output={"name": target, "type": "number"})
    Signature(signature)
    return signature


def mlflow_signature_columns(mlmodel: dict) -> list[dict] | None:
    """MLflow's column-based input signature as ``[{name, type}]``; None without one (or for tensors)."""
    raw = (mlmodel.get("signature") or {}).get("inputs")
    if not raw:
        return None
    try:
        inputs = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise ImportRefused("The MLmodel file's signature is not valid JSON.") from None
    if not isinstance(inputs, list) or not all(isinstance(i, dict) and i.get("name") for i in inputs):
        return None  # a tensor signature names no columns
    columns = []
    for item in inputs:
        kind = MLFLOW_TYPES.get(item.get("type"))
        if kind is None:
            raise ImportRefused(f"The MLmodel signature's column {item['name']!r} has the type {item.get('type')!r}.")
        columns.append({"name": str(item["name"]), "type": kind})
    return columns


# --- Folders: an archive or a run's logged files -----------------------------------------------
def _clean(name: str) -> str | None:
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    path = PurePosixPath(name)
    if not name or name.startswith("/") or ".." in path.parts or any(ord(c) < 32 for c in name):
        return None
    return str(path)


class ArchiveFolder:
    """The regular files of a .zip or .tar(.gz) archive by path (a single top-level folder stripped)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with self.path.open("rb") as file:
            head = file.read(4)
        self.kind = "zip" if head.startswith(b"PK\x03\x04") else "tar"
        self._zip = self._tar = None
        try:
            if self.kind == "zip":
                self._zip = zipfile.ZipFile(self.path)
                infos = self._zip.infolist()[: MAX_MEMBERS + 1]
                # a zip member is a file unless its Unix mode says otherwise (a link, a device)
                members = {
                    i.filename: i
                    for i in infos
                    if not i.is_dir() and stat.S_IFMT(i.external_attr >> 16) in (0, stat.S_IFREG)
                }
            else:
                self._tar = tarfile.open(self.path, "r:*")  # noqa: SIM115 - closed by close()
                infos = []
                for info in self._tar:
                    infos.append(info)
                    # Refused before the walk decompresses its way past a member that claims terabytes.
                    if len(infos) > MAX_MEMBERS or info.offset_data + info.size > MAX_UNPACKED_BYTES:
                        break
                members = {i.name: i for i in infos if i.isreg()}
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
            self.close()
            raise ImportRefused(f"The file is not a .zip or .tar.gz archive ({type(exc).__name__}).") from None
        if len(infos) > MAX_MEMBERS:
            self.close()
            raise ImportRefused(f"The archive holds more than {MAX_MEMBERS:,} members.")
        if self.kind == "tar" and infos and infos[-1].offset_data + infos[-1].size > MAX_UNPACKED_BYTES:
            self.close()
            raise ImportRefused(f"The archive unpacks to more than {MAX_UNPACKED_BYTES:,} bytes.")
        cleaned = {c: info for name, info in members.items() if (c := _clean(name))}
        tops = {n.split("/", 1)[0] for n in cleaned}
        strip = len(tops) == 1 and all("/" in n for n in cleaned)
        self._members = {(n.split("/", 1)[1] if strip else n): info for n, info in cleaned.items()}

    def names(self) -> list[str]:
        return sorted(self._members)

    def read(self, name: str, max_bytes: int) -> bytes:
        info = self._members.get(name)
        if info is None:
            raise ImportRefused(f"The model folder has no file {name!r}.")
        try:
            source = self._zip.open(info) if self.kind == "zip" else self._tar.extractfile(info)
            with source:
                data = source.read(max_bytes + 1)
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, RuntimeError) as exc:
            raise ImportRefused(f"{name} cannot be read from the archive ({type(exc).__name__}).") from None
        if len(data) > max_bytes:
            raise ImportRefused(f"{name} is larger than the limit of {max_bytes:,} bytes.")
        return data

    def close(self) -> None:
        for archive in (self._zip, self._tar):
            if archive is not None:
                archive.close()


class DiskFolder:
    """Files under ``root`` listed by the caller (a run's recorded artifacts): links are never read."""

    def __init__(self, root: Path, names):
        self.root = Path(root)
        self._names = sorted(n for n in names if _clean(n) == n)

    def names(self) -> list[str]:
        return list(self._names)

    def read(self, name: str, max_bytes: int) -> bytes:
        if name not in self._names:
            raise ImportRefused(f"The model folder has no file {name!r}.")
        path = self.root / name
        if path.is_symlink() or not path.is_file():
            raise ImportRefused(f"{name} is not a regular file.")
        if path.stat().st_size > max_bytes:
            raise ImportRefused(f"{name} is larger than the limit of {max_bytes:,} bytes.")
        return path.read_bytes()

    def close(self) -> None:
        pass


def read_mlmodel(folder) -> dict:
    """The ``MLmodel`` YAML of a model folder, parsed safely."""
    # deferred: only MLflow folders need YAML
    import yaml

    if "MLmodel" not in folder.names():
        raise ImportRefused("The archive is not an MLflow model folder: it has no MLmodel file.")
    try:
        mlmodel = yaml.safe_load(folder.read("MLmodel", MAX_MLMODEL_BYTES))
    except yaml.YAMLError as exc:
        raise ImportRefused(f"The MLmodel file is not valid YAML: {str(exc)[:200]}") from None
    if not isinstance(mlmodel, dict) or not isinstance(mlmodel.get("flavors"), dict):
        raise ImportRefused("The MLmodel file lists no flavors.")
    return mlmodel


def mlflow_model_file(mlmodel: dict) -> tuple[str, str]:
    """("onnx" | "skops", path of the file in the folder) for an MLflow model; refuses pickles."""
    flavors = mlmodel["flavors"]
    onnx = flavors.get("onnx")
    if isinstance(onnx, dict) and isinstance(onnx.get("data"), str):
        return "onnx", _member(onnx["data"])
    sklearn = flavors.get("sklearn")
    if isinstance(sklearn, dict) and sklearn.get("serialization_format") == "skops":
        return "skops", _member(str(sklearn.get("pickled_model") or "model.skops"))
    names = ", ".join(sorted(map(str, flavors))) or "none"
    pickled = isinstance(sklearn, dict) or any(
        isinstance(conf, dict) and ("pickle" in json.dumps(conf, default=str).lower() or conf.get("loader_module"))
        for conf in flavors.values()
    )
    if pickled:
        raise ImportRefused(f"This MLflow model's flavors ({names}) are pickle-based. {PICKLE_ADVICE}")
    raise ImportRefused(f"This MLflow model has no onnx flavor (its flavors: {names}). {PICKLE_ADVICE}")


def _member(name: str) -> str:
    cleaned = _clean(name)
    if cleaned is None:
        raise ImportRefused(f"The MLmodel file names a file outside the model folder: {name!r}.")
    return cleaned


def is_pickle_name(name: str) -> bool:
    return name.lower().endswith(PICKLE_SUFFIXES)


# --- ONNX ------------------------------------------------------------------------------------
def _spellings(name: str) -> set[str]:
    return {name, re.sub(r"[^0-9A-Za-z_]", "_", name), re.sub(r"\W", "_", name)}


def _dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def _class_labels(graph) -> list | None:
    """The class labels of the last node in the graph that declares them (ZipMap or a classifier)."""
    labels = None
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name == "classlabels_strings" and attribute.strings:
                labels = [s.decode() for s in attribute.strings]
            elif attribute.name in ("classlabels_int64s", "classlabels_ints") and attribute.ints:
                labels = list(attribute.ints)
    return labels


def _parse(onnx_bytes: bytes):
    # deferred: onnx is heavy to import and only ONNX files need it
    import onnx

    try:
        model = onnx.ModelProto.FromString(onnx_bytes)
    except Exception:  # noqa: BLE001 - protobuf raises its own DecodeError and more
        raise ImportRefused("The file is not an ONNX model (it does not parse).") from None
    if not model.graph.node or not model.graph.input:
        raise ImportRefused("The file is not an ONNX model (it has no graph).")
    return model


def onnx_input_columns(onnx_bytes: bytes) -> list[dict] | None:
    """[{name, type}] from an ONNX model whose inputs are one column each; None when they are not."""
    # deferred: onnx is heavy to import and only ONNX files need it
    from onnx import TensorProto

    kinds = {
        TensorProto.FLOAT: "numeric",
        TensorProto.DOUBLE: "numeric",
        TensorProto.INT64: "integer",
        TensorProto.INT32: "integer",
        TensorProto.STRING: "categorical",
    }
    graph = _parse(onnx_bytes).graph
    initializers = {t.name for t in graph.initializer}
    columns = []
    for item in graph.input:
        if item.name in initializers:
            continue
        dims = _dims(item)
        if item.type.tensor_type.elem_type not in kinds or (len(dims) == 2 and dims[-1] not in (1, None)):
            return None
        columns.append({"name": item.name, "type": kinds[item.type.tensor_type.elem_type]})
    return columns or None


def onnx_prepare(onnx_bytes: bytes, signature: dict) -> tuple[bytes, dict]:
    """The ONNX model rewritten for the studio's feed, and the signature with its classes set and
    the columns the model does not read made optional. Raises ImportRefused."""
    # deferred: onnx is heavy to import and only ONNX files need it
    from onnx import TensorProto, helper

    model = _parse(onnx_bytes)
    graph = model.graph
    if refers_to_external_data(graph):
        raise ImportRefused("The ONNX model refers to external data files; save it as one file.")
    if any(p.key == FEED_METADATA for p in model.metadata_props):
        del model.metadata_props[:]  # a studio twin exported earlier: its inputs are already columns
    sig = Signature(signature)
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    number_types = {TensorProto.FLOAT: "float", TensorProto.DOUBLE: "double"}
    int_types = (TensorProto.INT64, TensorProto.INT32)
    feed, new_inputs, bridges, read = {}, [], [], set()

    def column_input(spec, elem_type, wanted):
        """Declare the column's input; return the tensor name holding it in ``wanted`` element type."""
        if elem_type == TensorProto.STRING:
            if spec.kind not in ("string", "boolean"):
                raise ImportRefused(
                    f"The ONNX model reads {spec.name!r} as text, but the signature says {spec.type}.", "signature"
                )
            feed[spec.name] = "bool" if spec.kind == "boolean" else "string"
            new_inputs.append(helper.make_tensor_value_info(spec.name, TensorProto.STRING, [None, 1]))
            return spec.name
        if elem_type in number_types or elem_type in int_types:
            if spec.kind not in ("number", "integer", "flag"):
                raise ImportRefused(
                    f"The ONNX model reads {spec.name!r} as numbers, but the signature says {spec.type}.", "signature"
                )
            kind = number_types.get(elem_type, "double")
            feed[spec.name] = kind
            proto = TensorProto.FLOAT if kind == "float" else TensorProto.DOUBLE
            new_inputs.append(helper.make_tensor_value_info(spec.name, proto, [None, 1]))
            if proto == wanted:
                return spec.name
            cast = f"{spec.name}__studio_cast"
            bridges.append(helper.make_node("Cast", [spec.name], [cast], to=wanted))
            return cast
        raise ImportRefused(f"The ONNX input for {spec.name!r} has an element type the studio cannot feed.")

    for item in inputs:
        elem_type = item.type.tensor_type.elem_type
        dims = _dims(item)
        matches = [s for s in sig.columns if item.name in _spellings(s.name)]
        exact = [s for s in matches if s.name == item.name]
        matches = exact or matches
        width = dims[-1] if len(dims) == 2 else 1
        if len(matches) == 1 and width in (1, None):
            spec = matches[0]
            if spec.name in read:
                raise ImportRefused(f"Two ONNX inputs match the column {spec.name!r}.", "signature")
            read.add(spec.name)
            tensor = column_input(spec, elem_type, elem_type)
            target = f"{item.name}__studio_in"
            bridges.append(helper.make_node("Reshape", [tensor, "__studio_shape"], [target]))
        elif len(inputs) == 1 and len(dims) == 2 and isinstance(width, int) and width > 1:
            if width != len(sig.columns):
                raise ImportRefused(
                    f"The ONNX input {item.name!r} takes {width} numbers per row; the signature has "
                    f"{len(sig.columns)} columns.",
                    "signature",
                )
            if elem_type not in number_types and elem_type not in int_types:
                raise ImportRefused(f"The ONNX input {item.name!r} is not numbers.")
            parts = [column_input(spec, elem_type, elem_type) for spec in sig.columns]
            read.update(sig.names)
            target = f"{item.name}__studio_in"
            bridges.append(helper.make_node("Concat", parts, [target], axis=1))
        else:
            names = ", ".join(repr(n) for n in sig.names[:10])
            raise ImportRefused(
                f"The ONNX model reads {item.name!r}, which is not a column of the signature ({names}).", "signature"
            )
        for node in graph.node:
            node.input[:] = [target if name == item.name else name for name in node.input]
        if len(dims) == 1:
            bridges[-1] = helper.make_node("Reshape", [bridges[-1].input[0], "__studio_flat"], [target])
    shapes = [
        helper.make_tensor("__studio_shape", TensorProto.INT64, [2], [-1, 1]),
        helper.make_tensor("__studio_flat", TensorProto.INT64, [1], [-1]),
    ]

    classes = _class_labels(graph)
    if not classes:  # no labels: a regressor, served as its one numeric output
        return _regressor_prepared(model, signature, feed, new_inputs, bridges, shapes, read)
    zipmaps = [n for n in graph.node if n.op_type == "ZipMap"]
    if zipmaps:
        probabilities = zipmaps[-1].input[0]
        dropped = {o for n in zipmaps for o in n.output}
        kept = [n for n in graph.node if n.op_type != "ZipMap"]
        del graph.node[:]
        graph.node.extend(kept)
        outputs = [o for o in graph.output if o.name not in dropped]
    else:
        outputs = list(graph.output)
        numeric = [o for o in outputs if o.type.tensor_type.elem_type in number_types and len(_dims(o)) == 2 and o.name]
        if not numeric:
            raise ImportRefused("The ONNX model has no probabilities output (a rows × classes table of numbers).")
        named = [o for o in numeric if "prob" in o.name.lower()]
        probabilities = (named or numeric)[-1].name
    outputs = [o for o in outputs if o.name != PROBABILITIES]
    if probabilities == PROBABILITIES:  # skl2onnx's own name for the table: free it for the output
        probabilities = f"{PROBABILITIES}__studio_raw"
        for node in graph.node:
            node.input[:] = [probabilities if n == PROBABILITIES else n for n in node.input]
            node.output[:] = [probabilities if n == PROBABILITIES else n for n in node.output]
    tail = [helper.make_node("Cast", [probabilities], [PROBABILITIES], to=TensorProto.DOUBLE)]
    outputs = [helper.make_tensor_value_info(PROBABILITIES, TensorProto.DOUBLE, [None, len(classes)]), *outputs]
    _finish_graph(model, feed=feed, inputs=new_inputs, initializers=shapes, head=bridges, tail=tail, outputs=outputs)
    columns = [{**c, "required": c["name"] in read} for c in signature["columns"]]
    signature = {**signature, "columns": columns, "classes": json_labels(classes)}
    return model.SerializeToString(), signature


def _finish_graph(model, *, feed, inputs, initializers, head, tail, outputs) -> None:
    """The prepared graph: the signature's inputs, the bridges to the model's own inputs before its
    nodes, the output nodes after them, the feed recorded; checked by ONNX's checker."""
    # deferred: onnx is heavy to import and only ONNX files need it
    import onnx
    from onnx import helper

    graph = model.graph
    del graph.input[:]
    graph.input.extend(inputs)
    graph.initializer.extend(initializers)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend([*head, *nodes, *tail])
    del graph.output[:]
    graph.output.extend(outputs)
    model.metadata_props.add(key=FEED_METADATA, value=json.dumps(feed))
    if not any(o.domain in ("", "ai.onnx") for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("", 13))
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - the checker raises several types
        raise ImportRefused(f"The ONNX model is not valid: {str(exc)[:300]}") from None


def _regressor_prepared(model, signature, feed, new_inputs, bridges, shapes, read) -> tuple[bytes, dict]:
    """An ONNX regressor: its last numeric output (skl2onnx's "variable") becomes ``predictions``,
    rows × 1 in double."""
    # deferred: onnx is heavy to import and only ONNX files need it
    from onnx import TensorProto, helper

    graph = model.graph
    numeric = [o for o in graph.output if o.type.tensor_type.elem_type in (TensorProto.FLOAT, TensorProto.DOUBLE)]
    shapes_ok = [o for o in numeric if len(_dims(o)) == 1 or (len(_dims(o)) == 2 and _dims(o)[-1] in (1, None))]
    if not shapes_ok:
        raise ImportRefused("The ONNX model declares no class labels and no output of one number per row.")
    source = shapes_ok[-1].name
    if source == PREDICTIONS:
        source = f"{PREDICTIONS}__studio_raw"
        for node in graph.node:
            node.output[:] = [source if n == PREDICTIONS else n for n in node.output]
            node.input[:] = [source if n == PREDICTIONS else n for n in node.input]
    cast = f"{PREDICTIONS}__studio_double"
    tail = [
        helper.make_node("Cast", [source], [cast], to=TensorProto.DOUBLE),
        helper.make_node("Reshape", [cast, "__studio_shape"], [PREDICTIONS]),
    ]
    outputs = [helper.make_tensor_value_info(PREDICTIONS, TensorProto.DOUBLE, [None, 1])]
    _finish_graph(model, feed=feed, inputs=new_inputs, initializers=shapes, head=bridges, tail=tail, outputs=outputs)
    columns = [{**c, "required": c["name"] in read} for c in signature["columns"]]
    target = signature.get("target")
    signature = {
        **signature,
        "columns": columns,
        "task": REGRESSION,
        "classes": [],
        "output": {"name": target, "type": "number"},
    }
    return model.SerializeToString(), signature


def sample_payload(signature: dict, rows: int = 2) -> list[dict]:
    """Rows of plausible values, one per signature column, to check that a model runs."""
    values = {"numeric": 1.0, "integer": 1, "boolean": True, "datetime": "2024-01-01T00:00:00"}
    out = []
    for _ in range(rows):
        row = {}
        for column in signature["columns"]:
            if column.get("categories"):
                row[column["name"]] = column["categories"][0]
            else:
                row[column["name"]] = values.get(column["type"], "text")
        out.append(row)
    return out


def parse_signature_text(text) -> list:
    """A signature given as JSON text (a form field): the list of {name, type}."""
    if isinstance(text, list):
        return text
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise ImportRefused(
            'The signature is not valid JSON: give a list like [{"name": "age", "type": "numeric"}].', "signature"
        ) from None
    if isinstance(value, dict) and isinstance(value.get("columns"), list):
        value = value["columns"]
    return value
