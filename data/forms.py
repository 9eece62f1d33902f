from django import forms


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
