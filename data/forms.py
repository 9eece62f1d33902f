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


class DataImportUrlForm(forms.Form):
    url = forms.CharField(
        max_length=2000,
        label="URL",
        widget=forms.URLInput(attrs={"placeholder": "https://example.org/data/sales.csv"}),
        help_text="An http:// or https:// link to a CSV, TSV, .csv.gz or Parquet file.",
    )
    name = forms.CharField(
        max_length=100, required=False, label="Data asset", help_text="Empty: the file's name in the URL."
    )
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    tags = forms.CharField(max_length=500, required=False, help_text="Comma-separated, e.g. raw, 2024-q4")


class DataImportQueryForm(forms.Form):
    datastore = forms.ChoiceField(choices=())
    query = forms.CharField(
        max_length=100_000,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "placeholder": "SELECT * FROM sales"}),
        help_text="One SELECT (or WITH) statement; it runs read-only.",
    )
    name = forms.CharField(
        max_length=100,
        label="Data asset",
        help_text="A new name makes a new asset; an existing name makes its next version.",
    )
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    tags = forms.CharField(max_length=500, required=False, help_text="Comma-separated, e.g. raw, 2024-q4")

    def __init__(self, *args, datastore_names=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["datastore"].choices = [(n, n) for n in datastore_names]


class DatastoreForm(forms.Form):
    name = forms.CharField(max_length=100)
    url = forms.CharField(
        max_length=2000,
        label="Connection URL",
        # Never rendered back, even after an error: the URL holds the password.
        widget=forms.PasswordInput(
            render_value=False, attrs={"placeholder": "postgresql://user:password@host:5432/database"}
        ),
        help_text="Saved encrypted and never shown again. Use a user that may only read.",
    )
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))


class DataImportS3Form(forms.Form):
    datastore = forms.ChoiceField(choices=(), label="S3 datastore")
    key = forms.CharField(
        max_length=1024,
        label="Key",
        widget=forms.TextInput(attrs={"placeholder": "exports/2024/sales.csv", "spellcheck": "false"}),
        help_text="The object's key in the bucket, or a prefix ending in / whose CSV parts are joined.",
    )
    name = forms.CharField(max_length=100, required=False, label="Data asset", help_text="Empty: the object's name.")
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    tags = forms.CharField(max_length=500, required=False, help_text="Comma-separated, e.g. raw, 2024-q4")

    def __init__(self, *args, datastore_names=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["datastore"].choices = [(n, n) for n in datastore_names]


class DatastoreS3Form(forms.Form):
    name = forms.CharField(max_length=100)
    bucket = forms.CharField(max_length=63)
    region = forms.CharField(max_length=50, required=False, help_text="Empty: us-east-1.")
    endpoint_url = forms.CharField(
        max_length=300,
        required=False,
        label="Endpoint URL",
        widget=forms.TextInput(attrs={"placeholder": "http://minio.internal:9000"}),
        help_text="For MinIO or another S3-compatible store; empty for AWS S3.",
    )
    access_key_id = forms.CharField(max_length=128, label="Access key id")
    secret_access_key = forms.CharField(
        max_length=256,
        label="Secret access key",
        # Never rendered back, even after an error.
        widget=forms.PasswordInput(render_value=False),
        help_text="Saved encrypted and never shown again. Use a key that may only read.",
    )
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
