from django import forms

from .bases import bases

REQUIREMENTS_HELP = (
    "One package per line, as pip writes them: tabulate==0.9.0, requests>=2.31, rich[jupyter]. "
    "Lines starting with # are comments. No pip options (-e, -r, --index-url), URLs or paths; "
    "wheels only (a package that needs building from source fails the build)."
)


def base_choices() -> list[tuple[str, str]]:
    return [(base.key, f"{base.label} ({base.key})") for base in bases().values()]


class VersionForm(forms.Form):
    base = forms.ChoiceField(choices=base_choices, help_text="What the environment starts from (listed below).")
    requirements = forms.CharField(
        required=False,
        max_length=20_000,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "mono"}),
        help_text=REQUIREMENTS_HELP,
    )


class EnvironmentForm(VersionForm):
    name = forms.CharField(max_length=100, help_text="Letters, digits, dots, hyphens or underscores, e.g. nlp-tools.")
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))

    field_order = ["name", "description", "base", "requirements"]
