"""A command job's spec: checked and cleaned at submit time (every id in the workspace, every
placeholder declared), so a worker only ever reads a spec that makes sense.

Clean spec::

    {"code_snapshot_id": 3, "command": "python train.py --data ${{inputs.train}} ...",
     "environment_version_id": 7,
     "inputs": {"train": {"type": "data", "data_version_id": 5}, "lr": {"type": "number", "value": 0.1}},
     "outputs": {"model": {"type": "model"}, "report": {"type": "folder"}},
     "env": {"MODE": "fast"}, "secret_env": {"API_KEY": "<sealed>"}, "network": false}
"""

import math
import re

from django.core.exceptions import ValidationError

from data.selectors import data_version_get_by_id
from environments.selectors import environment_version_get_by_id

from .code_selectors import code_snapshot_get
from .placeholders import PlaceholderError, check
from .sealing import seal

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
LITERAL_TYPES = ("string", "number", "integer", "boolean")
OUTPUT_TYPES = ("folder", "model")
MAX_INPUTS, MAX_OUTPUTS, MAX_ENV = 50, 20, 100
MAX_COMMAND_CHARS, MAX_VALUE_CHARS = 10_000, 10_000
SECRET_MASK = "***"  # noqa: S105 - what a secret shows as


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def _names(field: str, mapping) -> dict:
    if mapping in (None, ""):
        return {}
    if not isinstance(mapping, dict):
        raise ValidationError({field: ["Give an object of name: value."]})
    bad = [str(name)[:70] for name in mapping if not NAME_RE.match(str(name))]
    if bad:
        raise ValidationError(
            {field: [f"Bad name(s): {', '.join(bad[:5])}. Use letters, digits and _, not starting with a digit."]}
        )
    return mapping


def _clean_input(workspace, name: str, value):
    """An input as {"type": ..., ...}; a bare literal (0.1, "adam", true) stands for itself."""
    if not isinstance(value, dict):
        value = {"value": value}
    kind = value.get("type") or ("data" if "data_version_id" in value else None)
    if kind == "data":
        if not _is_id(value.get("data_version_id")):
            raise ValidationError({"inputs": [f"{name}: give the id of a data version of this workspace."]})
        # Another workspace's id answers 404, as everywhere (R4).
        version = data_version_get_by_id(workspace=workspace, version_id=value["data_version_id"])
        return {"type": "data", "data_version_id": version.pk}, version
    literal = value.get("value")
    if kind is None:
        kind = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(type(literal))
    if kind not in LITERAL_TYPES:
        raise ValidationError({"inputs": [f"{name}: the type is one of data, {', '.join(LITERAL_TYPES)}."]})
    if kind == "boolean" and not isinstance(literal, bool):
        raise ValidationError({"inputs": [f"{name}: give true or false."]})
    if kind in ("number", "integer"):
        if isinstance(literal, bool) or not isinstance(literal, (int, float)) or not math.isfinite(literal):
            raise ValidationError({"inputs": [f"{name}: give a finite number."]})
        if kind == "integer" and not float(literal).is_integer():
            raise ValidationError({"inputs": [f"{name}: give a whole number."]})
        literal = int(literal) if kind == "integer" else literal
    if kind == "string" and (not isinstance(literal, str) or len(literal) > MAX_VALUE_CHARS or "\x00" in literal):
        raise ValidationError({"inputs": [f"{name}: give text of at most {MAX_VALUE_CHARS:,} characters."]})
    return {"type": kind, "value": literal}, None


def _clean_outputs(outputs) -> dict:
    if isinstance(outputs, list):  # ["model", "report"]: folders
        outputs = {name: {"type": "folder"} for name in outputs if isinstance(name, str)}
    outputs = _names("outputs", outputs)
    if len(outputs) > MAX_OUTPUTS:
        raise ValidationError({"outputs": [f"At most {MAX_OUTPUTS} outputs."]})
    clean = {}
    for name, value in outputs.items():
        kind = (
            value
            if isinstance(value, str)
            else (value or {}).get("type", "folder")
            if isinstance(value, dict)
            else None
        )
        if kind not in OUTPUT_TYPES:
            raise ValidationError({"outputs": [f"{name}: the type is folder or model."]})
        clean[name] = {"type": kind}
    return clean


def _clean_env(field: str, env) -> dict:
    if env in (None, ""):
        return {}
    if not isinstance(env, dict) or len(env) > MAX_ENV:
        raise ValidationError({field: [f"Give an object of at most {MAX_ENV} NAME: value pairs."]})
    for key, value in env.items():
        if not ENV_NAME_RE.match(str(key)) or str(key).upper().startswith("STUDIO_"):
            raise ValidationError(
                {field: [f"{str(key)[:70]!r}: use letters, digits and _; STUDIO_ names are the studio's."]}
            )
        if not isinstance(value, str) or len(value) > MAX_VALUE_CHARS or "\x00" in value:
            raise ValidationError({field: [f"{key}: the value is text of at most {MAX_VALUE_CHARS:,} characters."]})
    return dict(env)


def clean_command_spec(*, workspace, spec) -> tuple[dict, object | None]:
    """The clean spec and the first data input's version (the job's `data_version`)."""
    if not isinstance(spec, dict):
        raise ValidationError({"spec": ["The spec must be a JSON object."]})
    if not _is_id(spec.get("code_snapshot_id")):
        raise ValidationError({"code_snapshot_id": ["Upload the code first and give its id."]})
    snapshot = code_snapshot_get(workspace=workspace, snapshot_id=spec["code_snapshot_id"])
    command = spec.get("command")
    if not isinstance(command, str) or not command.strip():
        raise ValidationError({"command": ["Give the command to run, e.g. python train.py."]})
    if len(command) > MAX_COMMAND_CHARS or "\x00" in command:
        raise ValidationError({"command": [f"The command is at most {MAX_COMMAND_CHARS:,} characters."]})
    if not _is_id(spec.get("environment_version_id")):
        raise ValidationError({"environment_version_id": ["Choose an environment version of this workspace."]})
    environment = environment_version_get_by_id(workspace=workspace, version_id=spec["environment_version_id"])
    raw_inputs = _names("inputs", spec.get("inputs"))
    if len(raw_inputs) > MAX_INPUTS:
        raise ValidationError({"inputs": [f"At most {MAX_INPUTS} inputs."]})
    inputs, first_data = {}, None
    for name, value in raw_inputs.items():
        inputs[name], version = _clean_input(workspace, name, value)
        first_data = first_data or version
    outputs = _clean_outputs(spec.get("outputs"))
    try:
        check(command, inputs=set(inputs), outputs=set(outputs))
    except PlaceholderError as exc:
        raise ValidationError({"command": [str(exc)]}) from None
    env = _clean_env("env", spec.get("env"))
    for name, value in env.items():  # a variable may name a path too: REPORTS=${{outputs.reports}}
        try:
            check(value, inputs=set(inputs), outputs=set(outputs))
        except PlaceholderError as exc:
            raise ValidationError({"env": [f"{name}: {exc}"]}) from None
    secrets = _clean_env("secret_env", spec.get("secret_env"))
    both = sorted(set(env) & set(secrets))
    if both:
        raise ValidationError({"secret_env": [f"{', '.join(both)}: given both as a variable and as a secret."]})
    if not isinstance(spec.get("network", False), bool):
        raise ValidationError({"network": ["Give true or false."]})
    clean = {
        "code_snapshot_id": snapshot.pk,
        "command": command,
        "environment_version_id": environment.pk,
        "inputs": inputs,
        "outputs": outputs,
        "env": env,
        # Sealed at rest; pages and the API show only the names (public_spec).
        "secret_env": {name: seal(value) for name, value in secrets.items()},
        "network": spec.get("network", False),
    }
    return clean, first_data


def public_command_spec(spec: dict) -> dict:
    return {**spec, "secret_env": {name: SECRET_MASK for name in spec.get("secret_env", {})}}
