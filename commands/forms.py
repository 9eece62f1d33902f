"""The command job's submit form: code, command, environment, inputs, outputs, variables."""

import json
import re

from django import forms
from django.core.exceptions import ValidationError

from data.selectors import data_versions_ready
from environments.selectors import environment_versions_for_picker
from training.forms import JobSubmitForm

from .models import COMMAND, CodeSnapshot
from .specs import MAX_INPUTS, NAME_RE

DATA_INPUT_ROWS = 3
_LINE = re.compile(r"^\s*([^=\s]+)\s*=(.*)$")
# The fields of every job kind, laid out last under "Run on" (see commands/_submit_code.html).
RUN_FIELDS = ("target", "time_limit_seconds", "experiment_name", "display_name")
VARIABLE_FIELDS = ("env", "secret_env", "network")


_INTEGER = re.compile(r"^[-+]?\d{1,18}$")
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d{1,3})?$")


def _literal(text: str):
    """A value typed in the form: true/false, a whole number, a number, "quoted text", else text."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, str):
            return value
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if _INTEGER.match(text):
        return int(text)
    if _NUMBER.match(text):
        return float(text)
    return text


def _text(value) -> str:
    """How a value is written back in the form: text that would read as something else is quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and (
        _literal(value) != value or value != value.strip() or "\n" in value or "\r" in value
    ):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _pairs(field: str, text: str, *, names=None) -> dict[str, str]:
    """NAME=value lines; `names` (a regex) checks each name here, so the error names its line."""
    pairs = {}
    for number, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValidationError({field: f"Line {number}: write NAME=value."})
        name = match.group(1)
        if names is not None and not names.match(name):
            rule = "use letters, digits and _, not starting with a digit"
            raise ValidationError({field: f"Line {number}: {name[:70]} is not a name: {rule}."})
        if name in pairs:
            raise ValidationError({field: f"Line {number}: {name[:70]} is given twice."})
        pairs[name] = match.group(2).strip()
    return pairs


def _names(field: str, text: str) -> list[str]:
    names = [n.strip() for n in re.split(r"[,\s]+", text or "") if n.strip()]
    bad = [n for n in names if not NAME_RE.match(n)]
    if bad:
        raise ValidationError(
            {field: f"Bad name(s): {', '.join(bad[:5])}. Use letters, digits and _, not starting with a digit."}
        )
    return names


class CommandJobForm(JobSubmitForm):
    """Run your own code: upload a folder or an archive, then say how to run it."""

    kind = COMMAND
    extra_template = "commands/_submit_code.html"
    wide = True
    code_snapshot_id = forms.IntegerField(widget=forms.HiddenInput, required=False)
    command = forms.CharField(
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "mono"}),
        help_text="Runs in the code's folder with the environment's python first on the PATH. A data input is "
        "its Parquet file (a .csv copy lies beside it); an output is a folder to write into.",
    )
    environment_version_id = forms.TypedChoiceField(coerce=int, label="Environment")
    values = forms.CharField(
        required=False,
        label="Values",
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "class": "mono", "placeholder": "lr=0.1"}),
        help_text='Inputs that are values, one NAME=value per line: true/false, numbers, or text ("quoted" to '
        "keep 007 as text).",
    )
    model_outputs = forms.CharField(
        required=False,
        initial="model",
        label="Model outputs",
        help_text="Folders that will hold a model to register (a .skops file), comma-separated.",
    )
    folder_outputs = forms.CharField(
        required=False, label="Other outputs", help_text="Other folders to keep (reports, plots), comma-separated."
    )
    env = forms.CharField(
        required=False,
        label="Environment variables",
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "class": "mono", "placeholder": "MODE=fast"}),
        help_text="One NAME=value per line; a value may use placeholders too.",
    )
    secret_env = forms.CharField(
        required=False,
        label="Secret variables",
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "class": "mono", "autocomplete": "off"}),
        help_text="One NAME=value per line: stored encrypted, masked in the log, never shown again.",
    )
    network = forms.BooleanField(
        required=False,
        label="Allow network access",
        help_text="Off: the code reaches no network (nor the studio's API with the job's token).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        versions = [
            (v.pk, f"{v.environment.name}:{v.version}")
            for v in environment_versions_for_picker(workspace=self.workspace)
        ]
        self.fields["environment_version_id"].choices = versions
        self.no_environments = not versions
        data = [("", "—")] + [
            (v.pk, f"{v.asset.name} v{v.version} ({v.rows:,} rows)")
            for v in data_versions_ready(workspace=self.workspace)[:200]
        ]
        self.data_labels = {str(pk): label for pk, label in data if pk}
        for row in range(1, self._data_row_count() + 1):
            # Laid out as a table row: the label is for screen readers (aria-label).
            label = f"Data input {row}: name"
            self.fields[f"data_name_{row}"] = forms.CharField(
                required=False,
                max_length=64,
                label=label,
                initial="train" if row == 1 else "",
                widget=forms.TextInput(attrs={"aria-label": label, "placeholder": "e.g. train" if row == 1 else ""}),
            )
            label = f"Data input {row}: data version"
            self.fields[f"data_version_{row}"] = forms.TypedChoiceField(
                coerce=int,
                empty_value=None,
                required=False,
                choices=data,
                label=label,
                widget=forms.Select(attrs={"aria-label": label}),
            )

    def _data_row_count(self) -> int:
        """Three rows, or as many as a cloned job (or the posted form) has, up to the spec's limit."""
        keys = [*(self.initial or {}), *(self.data or {})]
        rows = [int(k[len("data_name_") :]) for k in keys if re.fullmatch(r"data_name_\d{1,2}", k)]
        return min(max([DATA_INPUT_ROWS, *rows]), MAX_INPUTS)

    # --- Layout (commands/_submit_code.html lays out every field in its sections) ---------------
    def plain_fields(self) -> list:
        return []

    def data_rows(self) -> list:
        return [(self[f"data_name_{row}"], self[f"data_version_{row}"]) for row in range(1, self._data_row_count() + 1)]

    def run_fields(self) -> list:
        return [self[name] for name in RUN_FIELDS]

    def variable_fields(self) -> list:
        return [self[name] for name in VARIABLE_FIELDS]

    def variables_open(self) -> bool:
        return any(self[name].value() or self[name].errors for name in VARIABLE_FIELDS)

    def code_snapshot(self) -> CodeSnapshot | None:
        """The code chosen so far (a re-shown form, a clone), to show what it is."""
        value = self["code_snapshot_id"].value()
        if not value or not str(value).isdigit():
            return None
        return CodeSnapshot.objects.filter(workspace=self.workspace, pk=int(value)).defer("files").first()

    def placeholders(self) -> list[tuple[str, str]]:
        """[(placeholder, what it stands for)] for what the form declares so far (static/studio/
        command_form.js keeps the list current as the user types). Lenient: a bad line is skipped."""
        found = []
        for name_field, version_field in self.data_rows():
            name, version = (name_field.value() or "").strip(), str(version_field.value() or "")
            if NAME_RE.match(name) and version:
                found.append((f"inputs.{name}", f"data: {self.data_labels.get(version, 'a data version')}"))
        for line in (self["values"].value() or "").splitlines():
            match = _LINE.match(line)
            if match and NAME_RE.match(match.group(1)):
                found.append((f"inputs.{match.group(1)}", f"value: {match.group(2).strip()}"))
        for field, kind in (("model_outputs", "model folder"), ("folder_outputs", "folder")):
            for name in re.split(r"[,\s]+", self[field].value() or ""):
                if NAME_RE.match(name):
                    found.append((f"outputs.{name}", kind))
        return [("${{" + key + "}}", text) for key, text in dict(found).items()]

    # --- Checks and the spec ------------------------------------------------------------------------
    def clean(self):
        data = super().clean()
        snapshot_id = data.get("code_snapshot_id")
        if not snapshot_id:
            self.add_error("code_snapshot_id", "Upload the code first: drop a folder or choose an archive.")
        elif not CodeSnapshot.objects.filter(workspace=self.workspace, pk=snapshot_id).exists():
            self.add_error("code_snapshot_id", "This code is not in this workspace (any more): upload it again.")
        try:
            self._inputs = self._clean_inputs(data)
            self._outputs = {name: "model" for name in _names("model_outputs", data.get("model_outputs"))}
            for name in _names("folder_outputs", data.get("folder_outputs")):
                if name in self._outputs:
                    raise ValidationError({"folder_outputs": f"{name} is already a model output."})
                self._outputs[name] = "folder"
            self._env = _pairs("env", data.get("env", ""))
            self._secrets = _pairs("secret_env", data.get("secret_env", ""))
            empty = [name for name, value in self._secrets.items() if not value]
            if empty:  # a clone shows the names only: an empty secret is a value not typed again
                raise ValidationError(
                    {"secret_env": f"Type the value of {', '.join(empty)}: secrets are never shown again."}
                )
        except ValidationError as exc:
            self.add_error(None, exc)
        return data

    def _clean_inputs(self, data) -> dict:
        inputs = {}
        for row in range(1, self._data_row_count() + 1):
            name, version = (data.get(f"data_name_{row}") or "").strip(), data.get(f"data_version_{row}")
            if not version:
                continue  # a name alone (the first row's "train") declares nothing
            if not name:
                raise ValidationError({f"data_name_{row}": "Name this input (e.g. train)."})
            if not NAME_RE.match(name):
                raise ValidationError(
                    {f"data_name_{row}": "Use letters, digits and _, not starting with a digit (e.g. train)."}
                )
            if name in inputs:
                raise ValidationError({f"data_name_{row}": f"{name} is given twice: name each input once."})
            inputs[name] = {"type": "data", "data_version_id": version}
        for name, value in _pairs("values", data.get("values", ""), names=NAME_RE).items():
            if name in inputs:
                raise ValidationError({"values": f"{name} is already a data input: name each input once."})
            inputs[name] = _literal(value)
        return inputs

    def spec(self) -> dict:
        data = self.cleaned_data
        return {
            "code_snapshot_id": data["code_snapshot_id"],
            "command": data["command"],
            "environment_version_id": data["environment_version_id"],
            "inputs": self._inputs,
            "outputs": self._outputs,
            "env": self._env,
            "secret_env": self._secrets,
            "network": data.get("network", False),
        }

    @classmethod
    def initial_from_job(cls, job) -> dict:
        """Everything but the secrets' values, which were never shown: the user types them again."""
        initial = super().initial_from_job(job)
        spec = job.spec
        data = [(n, i) for n, i in spec.get("inputs", {}).items() if i.get("type") == "data"]
        for row, (name, item) in enumerate(data, 1):
            initial[f"data_name_{row}"], initial[f"data_version_{row}"] = name, item["data_version_id"]
        outputs = spec.get("outputs", {})
        initial.update(
            values="\n".join(
                f"{n}={_text(i['value'])}" for n, i in spec.get("inputs", {}).items() if i.get("type") != "data"
            ),
            model_outputs=", ".join(n for n, o in outputs.items() if o["type"] == "model"),
            folder_outputs=", ".join(n for n, o in outputs.items() if o["type"] == "folder"),
            env="\n".join(f"{k}={v}" for k, v in spec.get("env", {}).items()),
            secret_env="\n".join(f"{k}=" for k in spec.get("secret_env", {})),
        )
        return initial
