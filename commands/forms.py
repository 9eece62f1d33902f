"""The command job's submit form: code, command, environment, inputs, outputs, variables."""

import re

from django import forms
from django.core.exceptions import ValidationError

from data.selectors import data_versions_ready
from environments.selectors import environment_versions_for_picker
from training.forms import JobSubmitForm

from .models import COMMAND
from .specs import NAME_RE

DATA_INPUT_ROWS = 3
_LINE = re.compile(r"^\s*([^=\s]+)\s*=(.*)$")


def _literal(text: str):
    """A value typed in the form: true/false, a whole number, a number, else text."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _pairs(field: str, text: str) -> dict[str, str]:
    pairs = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValidationError({field: f"Line {number}: write NAME=value."})
        pairs[match.group(1)] = match.group(2).strip()
    return pairs


def _names(field: str, text: str) -> list[str]:
    names = [n.strip() for n in re.split(r"[,\s]+", text or "") if n.strip()]
    bad = [n for n in names if not NAME_RE.match(n)]
    if bad:
        raise ValidationError({field: f"Bad name(s): {', '.join(bad[:5])}. Use letters, digits and _."})
    return names


class CommandJobForm(JobSubmitForm):
    """Run your own code: upload a folder or an archive, then say how to run it."""

    kind = COMMAND
    extra_template = "commands/_submit_code.html"
    code_snapshot_id = forms.IntegerField(widget=forms.HiddenInput, required=False)
    command = forms.CharField(
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "mono"}),
        help_text="Run from the code's folder, e.g. python train.py --data ${{inputs.train}} --lr ${{inputs.lr}} "
        "--out ${{outputs.model}}. A data input is its Parquet file (a .csv of it lies beside it); an output is a "
        "folder to write into.",
    )
    environment_version_id = forms.TypedChoiceField(coerce=int, label="Environment")
    values = forms.CharField(
        required=False,
        label="Values",
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "placeholder": "lr=0.1\nsolver=lbfgs"}),
        help_text="Inputs that are values, one NAME=value per line: true/false, numbers or text.",
    )
    model_outputs = forms.CharField(
        required=False,
        initial="model",
        label="Model outputs",
        help_text="Names of output folders that hold a model to register (a .skops file), comma-separated.",
    )
    folder_outputs = forms.CharField(
        required=False, label="Other outputs", help_text="Names of other output folders, comma-separated."
    )
    env = forms.CharField(
        required=False,
        label="Environment variables",
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "placeholder": "MODE=fast"}),
        help_text="One NAME=value per line.",
    )
    secret_env = forms.CharField(
        required=False,
        label="Secret variables",
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "autocomplete": "off"}),
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
        if not versions:
            self.fields["environment_version_id"].help_text = "No environment yet: create one on the Environments page."
        data = [("", "—")] + [
            (v.pk, f"{v.asset.name} v{v.version} ({v.rows:,} rows)")
            for v in data_versions_ready(workspace=self.workspace)[:200]
        ]
        for row in range(1, DATA_INPUT_ROWS + 1):
            self.fields[f"data_name_{row}"] = forms.CharField(
                required=False, max_length=64, label=f"Data input {row}: name", initial="train" if row == 1 else ""
            )
            self.fields[f"data_version_{row}"] = forms.TypedChoiceField(
                coerce=int, empty_value=None, required=False, choices=data, label=f"Data input {row}: data version"
            )

    def data_rows(self) -> list:
        return [(self[f"data_name_{row}"], self[f"data_version_{row}"]) for row in range(1, DATA_INPUT_ROWS + 1)]

    def plain_fields(self) -> list:
        return [f for f in self if not f.is_hidden and not f.name.startswith(("data_name_", "data_version_"))]

    def clean(self):
        data = super().clean()
        if not data.get("code_snapshot_id"):
            self.add_error("code_snapshot_id", "Upload the code first: drop a folder or choose an archive.")
        try:
            self._inputs = {name: _literal(value) for name, value in _pairs("values", data.get("values", "")).items()}
            for row in range(1, DATA_INPUT_ROWS + 1):
                name, version = (data.get(f"data_name_{row}") or "").strip(), data.get(f"data_version_{row}")
                if version and not name:
                    raise ValidationError({f"data_name_{row}": "Name this input (e.g. train)."})
                if version:
                    self._inputs[name] = {"type": "data", "data_version_id": version}
            self._outputs = {name: "model" for name in _names("model_outputs", data.get("model_outputs"))}
            self._outputs |= {name: "folder" for name in _names("folder_outputs", data.get("folder_outputs"))}
            self._env = _pairs("env", data.get("env", ""))
            self._secrets = _pairs("secret_env", data.get("secret_env", ""))
        except ValidationError as exc:
            self.add_error(None, exc)
        return data

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
        for row, (name, item) in enumerate(data[:DATA_INPUT_ROWS], 1):
            initial[f"data_name_{row}"], initial[f"data_version_{row}"] = name, item["data_version_id"]

        def text(value) -> str:
            return ("true" if value else "false") if isinstance(value, bool) else str(value)

        outputs = spec.get("outputs", {})
        initial.update(
            values="\n".join(
                f"{n}={text(i['value'])}" for n, i in spec.get("inputs", {}).items() if i.get("type") != "data"
            ),
            model_outputs=", ".join(n for n, o in outputs.items() if o["type"] == "model"),
            folder_outputs=", ".join(n for n, o in outputs.items() if o["type"] == "folder"),
            env="\n".join(f"{k}={v}" for k, v in spec.get("env", {}).items()),
            secret_env="\n".join(f"{k}=" for k in spec.get("secret_env", {})),
        )
        return initial
