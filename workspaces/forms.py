from django import forms

from .models import Role


class WorkspaceForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 3}))


class MemberAddForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        help_text="An existing account is added at once. A new username makes an account, with a one-time "
        "link for the person to set a password.",
    )
    email = forms.EmailField(required=False, label="Email", help_text="Kept on a new account.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.READER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class DataUploadForm(forms.Form):
    file = forms.FileField(help_text="CSV, TSV or any delimiter, .csv.gz, or Parquet.")
    name = forms.CharField(
        max_length=100,
        required=False,
        label="Data asset",
        help_text="A new name makes a new asset; an existing name makes its next version. Empty: the file's name.",
    )
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    tags = forms.CharField(max_length=500, required=False, help_text="Comma-separated, e.g. raw, 2024-q4")
    allow_identical = forms.BooleanField(
        required=False,
        label="Make a new version anyway",
        help_text="A file identical to a version of this asset makes no new version unless this is ticked.",
    )
