"""Job and environment files (YAML in Azure ML's shape), read with the line of every field so a
mistake is reported as `job.yml:7: inputs.train: ...`."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_SPEC_BYTES = 1024 * 1024

JOB_FIELDS = {
    "$schema",
    "type",
    "name",
    "display_name",
    "description",
    "tags",
    "experiment_name",
    "command",
    "code",
    "environment",
    "inputs",
    "outputs",
    "compute",
    "environment_variables",
    "secret_environment_variables",
    "limits",
}
ENV_FIELDS = {"$schema", "name", "version", "description", "tags", "base", "image", "requirements", "pip", "conda_file"}
DATA_INPUT_TYPES = {"data", "uri_file", "uri_folder", "mltable"}
LITERAL_TYPES = {"string", "number", "integer", "boolean"}
# `azureml:penguins:3`, `penguins:3`, `penguins@latest`
ASSET_REF = re.compile(r"^(?:azureml:)?(?P<name>[^:@]+?)(?::(?P<version>\d+)|@(?P<label>latest))$")


class SpecError(Exception):
    """A mistake in a job or environment file, with where it is."""

    def __init__(self, source: str, line: int | None, field_name: str, message: str):
        self.source, self.line, self.field, self.message = source, line, field_name, message
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {field_name}: {message}" if field_name else f"{where}: {message}")

    def as_dict(self) -> dict:
        return {
            "error": {
                "code": "invalid_file",
                "message": self.message,
                "file": self.source,
                "line": self.line,
                "field": self.field,
            }
        }


@dataclass
class Located:
    """A parsed YAML file with the 1-based line of each field, by dotted path."""

    source: str
    data: Any
    lines: dict[str, int] = field(default_factory=dict)

    def line(self, path: str) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path.rpartition(".")[0]
        return self.lines.get("")

    def error(self, path: str, message: str) -> SpecError:
        return SpecError(self.source, self.line(path), path, message)


def _walk(node, path: str, lines: dict[str, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = f"{path}.{key.value}" if path else str(key.value)
            lines[child] = key.start_mark.line + 1
            _walk(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, f"{path}.{index}" if path else str(index), lines)


def load_located(path: str) -> Located:
    """Reads a YAML file, keeping lines (yaml.compose nodes carry start_mark)."""
    source = os.path.basename(path)
    try:
        size = os.path.getsize(path)
        if size > MAX_SPEC_BYTES:
            raise SpecError(source, None, "", f"the file is {size} bytes; at most {MAX_SPEC_BYTES} are read.")
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise SpecError(source, None, "", f"cannot read it ({exc.strerror or exc}).") from None
    except UnicodeDecodeError:
        raise SpecError(source, None, "", "it is not UTF-8 text.") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SpecError(source, mark.line + 1 if mark else None, "", f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise SpecError(source, None, "", f"not valid YAML: {exc}") from None
    lines: dict[str, int] = {}
    if node is not None:
        _walk(node, "", lines)
    located = Located(source=source, data=data, lines=lines)
    if not isinstance(data, dict):
        raise located.error("", "the file must be a mapping of field: value.")
    return located


def _check_fields(doc: Located, allowed: set[str]) -> None:
    for key in doc.data:
        if str(key) not in allowed:
            hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            also = f" Did you mean '{hint[0]}'?" if hint else f" Known fields: {', '.join(sorted(allowed))}."
            raise doc.error(str(key), f"unknown field.{also}")


def _text(doc: Located, key: str, *, required: bool = False, default: str = "") -> str:
    value = doc.data.get(key)
    if value is None or value == "":
        if required:
            raise SpecError(doc.source, doc.line(key) or 1, key, "is required.")
        return default
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise doc.error(key, "must be text.")
    return str(value)


def _mapping(doc: Located, key: str) -> dict:
    value = doc.data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise doc.error(key, "must be a mapping of name: value.")
    return value


def asset_ref(text: str) -> tuple[str, int | None] | None:
    """(`name`, version or None for latest) of `azureml:name:3`, `name:3` or `name@latest`."""
    match = ASSET_REF.match(text.strip()) if isinstance(text, str) else None
    if not match:
        return None
    return match["name"].strip(), int(match["version"]) if match["version"] else None


@dataclass
class JobFile:
    """A command job as read from its file, with names still to resolve to ids."""

    doc: Located
    base_dir: str
    command: str
    code: str | None
    environment: tuple[str, int | None]
    compute: str | None
    inputs: dict[str, dict]  # name -> {"data": (asset, version)} or {"literal": {...}}
    outputs: dict[str, str]  # name -> folder | model
    env: dict[str, str]
    secret_env: dict[str, str]
    display_name: str
    experiment: str
    time_limit_seconds: int | None


def read_job_file(path: str) -> JobFile:
    doc = load_located(path)
    _check_fields(doc, JOB_FIELDS)
    kind = _text(doc, "type", default="command")
    if kind != "command":
        raise doc.error("type", f"'{kind}' is not served; the type of a job file is 'command'.")
    command = _text(doc, "command", required=True)
    code = _text(doc, "code") or None
    base_dir = os.path.dirname(os.path.abspath(path))
    if code is not None:
        code_path = os.path.normpath(os.path.join(base_dir, code))
        if not os.path.isdir(code_path):
            raise doc.error("code", f"'{code}' is not a folder (relative to the job file).")
        code = code_path
    env_text = _text(doc, "environment", required=True)
    environment = asset_ref(env_text)
    if environment is None:
        raise doc.error("environment", f"'{env_text}': give name:version or name@latest (azureml: is allowed).")
    compute = _text(doc, "compute") or None
    if compute and compute.startswith("azureml:"):
        compute = compute[len("azureml:") :]

    inputs: dict[str, dict] = {}
    for name, value in _mapping(doc, "inputs").items():
        where = f"inputs.{name}"
        if isinstance(value, dict):
            kind = str(value.get("type") or ("data" if "path" in value else ""))
            if kind in DATA_INPUT_TYPES:
                ref = asset_ref(str(value.get("path") or ""))
                if ref is None:
                    raise doc.error(
                        f"{where}.path" if "path" in value else where,
                        "give the data asset as name:version or name@latest (azureml: is allowed).",
                    )
                inputs[str(name)] = {"data": ref}
            elif kind in LITERAL_TYPES:
                if "value" not in value and "default" not in value:
                    raise doc.error(where, "a literal input needs a value.")
                inputs[str(name)] = {"literal": {"type": kind, "value": value.get("value", value.get("default"))}}
            else:
                raise doc.error(
                    f"{where}.type" if "type" in value else where,
                    f"the type is one of {', '.join(sorted(DATA_INPUT_TYPES | LITERAL_TYPES))}.",
                )
        elif isinstance(value, str) and (value.startswith("azureml:") or asset_ref(value)):
            ref = asset_ref(value)
            if ref is None:
                raise doc.error(where, f"'{value}': give the data asset as azureml:name:version.")
            inputs[str(name)] = {"data": ref}
        elif isinstance(value, (str, int, float, bool)):
            inputs[str(name)] = {"literal": {"value": value}}
        else:
            raise doc.error(where, "give a data asset (name:version) or a value (text, number, true/false).")

    outputs: dict[str, str] = {}
    for name, value in _mapping(doc, "outputs").items():
        kind = str((value or {}).get("type", "uri_folder")) if isinstance(value, dict) or value is None else None
        if kind is None:
            raise doc.error(f"outputs.{name}", "give a mapping such as {type: uri_folder} or {type: custom_model}.")
        if "model" in kind:
            outputs[str(name)] = "model"
        elif kind in ("uri_folder", "folder", "uri_file"):
            outputs[str(name)] = "folder"
        else:
            raise doc.error(f"outputs.{name}.type", "the type is uri_folder or a model (custom_model, mlflow_model).")

    def variables(key: str) -> dict[str, str]:
        values = {}
        for name, value in _mapping(doc, key).items():
            if isinstance(value, (dict, list)) or value is None:
                raise doc.error(f"{key}.{name}", "must be text or a number.")
            values[str(name)] = str(value).lower() if isinstance(value, bool) else str(value)
        return values

    limit = None
    limits = _mapping(doc, "limits")
    if "timeout" in limits:
        timeout = limits["timeout"]
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
            raise doc.error("limits.timeout", "give a whole number of seconds.")
        limit = timeout
    return JobFile(
        doc=doc,
        base_dir=base_dir,
        command=command,
        code=code,
        environment=environment,
        compute=compute,
        inputs=inputs,
        outputs=outputs,
        env=variables("environment_variables"),
        secret_env=variables("secret_environment_variables"),
        display_name=_text(doc, "display_name") or _text(doc, "name"),
        experiment=_text(doc, "experiment_name"),
        time_limit_seconds=limit,
    )


@dataclass
class EnvFile:
    doc: Located
    name: str
    base: str
    requirements: str
    description: str


def _conda_pip(doc: Located, path: str) -> list[str]:
    """The pip dependencies of a conda file (the only part the studio builds)."""
    conda = load_located(path)
    deps = conda.data.get("dependencies") or []
    if not isinstance(deps, list):
        raise conda.error("dependencies", "must be a list.")
    pip: list[str] = []
    for index, dep in enumerate(deps):
        if isinstance(dep, dict) and "pip" in dep:
            if not isinstance(dep["pip"], list):
                raise conda.error(f"dependencies.{index}.pip", "must be a list of requirements.")
            pip += [str(x) for x in dep["pip"]]
    return pip


def read_env_file(path: str) -> EnvFile:
    doc = load_located(path)
    _check_fields(doc, ENV_FIELDS)
    name = _text(doc, "name", required=True)
    base = _text(doc, "base") or _text(doc, "image")
    if not base:
        raise SpecError(doc.source, 1, "base", "is required (the studio's base environment, e.g. studio-sklearn).")
    base = base.rsplit("/", 1)[-1].split(":", 1)[0] if "/" in base or ":" in base else base
    requirements = doc.data.get("requirements", doc.data.get("pip"))
    key = "requirements" if "requirements" in doc.data else "pip"
    if requirements is None:
        lines: list[str] = []
    elif isinstance(requirements, str):
        lines = requirements.splitlines()
    elif isinstance(requirements, list) and all(isinstance(x, (str, int, float)) for x in requirements):
        lines = [str(x) for x in requirements]
    else:
        raise doc.error(key, "give a list of pip requirements (or their text).")
    conda_file = _text(doc, "conda_file")
    if conda_file:
        conda_path = os.path.join(os.path.dirname(os.path.abspath(path)), conda_file)
        if not os.path.isfile(conda_path):
            raise doc.error("conda_file", f"'{conda_file}' is not a file (relative to the environment file).")
        lines += _conda_pip(doc, conda_path)
    return EnvFile(
        doc=doc,
        name=name,
        base=base,
        requirements="\n".join(line.strip() for line in lines if line.strip()),
        description=_text(doc, "description"),
    )
