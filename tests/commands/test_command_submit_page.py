"""The command job's submit form and job page without a node: hostile and messy input gets a
form error naming the field (never a 404 or a 500, never a job), a clone shows everything but the
secrets' values, and any job's logged parameters show on its page."""

import zipfile

import pytest
from django.test import Client

from commands.code_services import code_snapshot_create_from_archive
from commands.forms import CommandJobForm, _literal, _text
from compute.jobs.models import Job, JobParam
from compute.jobs.services import job_submit
from compute.models import TargetKind
from compute.services import target_create
from environments.services import environment_create
from tests.query_counts import make_job

pytestmark = pytest.mark.django_db


def zipped(tmp_path, files: dict, name="code.zip"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in files.items():
            zf.writestr(member, text)
    return path


@pytest.fixture
def snapshot(contributor, workspace, tmp_path):
    path = zipped(tmp_path, {"proj/train.py": "print(1)\n", "proj/l\u00e9 README.md": "# hi\n"})
    return code_snapshot_create_from_archive(actor=contributor, workspace=workspace, path=path, filename="proj.zip")


@pytest.fixture
def cluster(owner, workspace):
    return target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu", max_nodes=1).target


@pytest.fixture
def environment(owner, workspace):
    return environment_create(actor=owner, workspace=workspace, name="py", base="python", requirements="")


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post(client, workspace, **fields):
    return client.post(f"/w/{workspace.pk}/jobs/new/", {"kind": "command", **fields})


@pytest.fixture
def valid(snapshot, environment, cluster, penguins):
    return {
        "code_snapshot_id": snapshot.pk,
        "environment_version_id": environment.pk,
        "target": cluster.pk,
        "experiment_name": "Default",
        "data_name_1": "train",
        "data_version_1": penguins.pk,
        "values": "n=3",
        "model_outputs": "",
        "folder_outputs": "report",
        "command": "python train.py ${{inputs.train}} ${{inputs.n}} ${{outputs.report}}",
    }


def test_a_valid_form_submits_the_spec_it_shows(contributor, workspace, valid, penguins):
    values = 'n=3\nlabel="007"\nrate=1e-3\nname=caf\u00e9 \u00fc'
    response = post(signed_in(contributor), workspace, **(valid | {"values": values}))
    job = Job.objects.get(kind="command")
    assert response.status_code == 302 and response["Location"].endswith(f"/jobs/{job.pk}/")
    assert job.spec["inputs"] == {  # (PostgreSQL's jsonb keeps no key order)
        "train": {"type": "data", "data_version_id": penguins.pk},
        "n": {"type": "integer", "value": 3},
        "label": {"type": "string", "value": "007"},
        "rate": {"type": "number", "value": 0.001},
        "name": {"type": "string", "value": "caf\u00e9 \u00fc"},
    }
    assert job.spec["outputs"] == {"report": {"type": "folder"}}


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"values": "n=3\n9lives=1"}, "values", "Line 2: 9lives is not a name"),
        ({"values": "n=3\nn=4"}, "values", "Line 2: n is given twice"),
        ({"values": "just words"}, "values", "Line 1: write NAME=value"),
        ({"values": "train=1"}, "values", "train is already a data input"),
        ({"data_name_2": "train", "data_version_2": "PENGUINS"}, "data_name_2", "train is given twice"),
        ({"data_name_1": "my data"}, "data_name_1", "Use letters, digits and _"),
        ({"data_name_1": ""}, "data_name_1", "Name this input"),
        ({"model_outputs": "report"}, "folder_outputs", "report is already a model output"),
        ({"folder_outputs": "report, ../etc"}, "folder_outputs", "Bad name(s): ../etc"),
        ({"secret_env": "API_KEY="}, "secret_env", "Type the value of API_KEY"),
        ({"env": "STUDIO_RUN_TOKEN=x"}, "env", "STUDIO_ names are the studio's"),
        ({"command": "python train.py ${{inputs.trian}}"}, "command", "Unknown placeholder(s): ${{inputs.trian}}"),
        ({"command": "python train.py ${{ inputs.train"}, "command", "not closed"),
        ({"code_snapshot_id": ""}, "code_snapshot_id", "Upload the code first"),
        ({"environment_version_id": "999999"}, "environment_version_id", "Select a valid choice"),
        ({"data_version_1": "999999"}, "data_version_1", "Select a valid choice"),
    ],
)
def test_hostile_or_messy_input_is_a_form_error_and_no_job(
    contributor, workspace, valid, penguins, fields, field, message
):
    fields = {key: penguins.pk if value == "PENGUINS" else value for key, value in fields.items()}
    response = post(signed_in(contributor), workspace, **(valid | fields))
    assert response.status_code == 200
    form = response.context["form"]
    errors = " ".join(form.errors.get(field, []) + form.non_field_errors())
    assert message in errors, form.errors
    assert message in response.content.decode().replace("&#x27;", "'").replace("&quot;", '"')
    assert not Job.objects.exists()


def test_another_workspaces_code_is_a_form_error_not_a_404(
    outsider, other_workspace, contributor, workspace, valid, tmp_path
):
    theirs = code_snapshot_create_from_archive(
        actor=outsider, workspace=other_workspace, path=zipped(tmp_path, {"x.py": "1"}, "x.zip"), filename="x.zip"
    )
    response = post(signed_in(contributor), workspace, **(valid | {"code_snapshot_id": theirs.pk}))
    assert response.status_code == 200
    assert "not in this workspace" in " ".join(response.context["form"].errors["code_snapshot_id"])
    assert not Job.objects.exists()


def test_a_form_shown_again_keeps_the_code_and_lists_the_declared_placeholders(contributor, workspace, valid, snapshot):
    response = post(signed_in(contributor), workspace, **(valid | {"command": "python ${{outputs.nope}}"}))
    html = response.content.decode()
    assert 'data-testid="code-summary">2 files' in html and snapshot.name in html
    form = response.context["form"]
    assert [text for text, _ in form.placeholders()] == [
        "${{inputs.train}}",
        "${{inputs.n}}",
        "${{outputs.report}}",
    ]
    assert 'data-insert="${{inputs.n}}"' in html


def test_a_workspace_without_environments_links_to_create_one(contributor, workspace):
    html = signed_in(contributor).get(f"/w/{workspace.pk}/jobs/new/?kind=command").content.decode()
    assert 'data-testid="no-environments"' in html
    assert f'href="/w/{workspace.pk}/environments/new/"' in html


def test_a_clone_shows_everything_but_the_secrets_values(
    contributor, workspace, snapshot, environment, cluster, penguins
):
    versions = [penguins] + [penguins] * 3
    job = job_submit(
        actor=contributor,
        workspace=workspace,
        kind="command",
        target=cluster,
        spec={
            "code_snapshot_id": snapshot.pk,
            "command": "python train.py ${{inputs.d4}} ${{inputs.code}} ${{inputs.flag}}",
            "environment_version_id": environment.pk,
            "inputs": {
                **{f"d{i}": {"type": "data", "data_version_id": v.pk} for i, v in enumerate(versions, 1)},
                "code": {"type": "string", "value": "007"},
                "flag": True,
                "note": {"type": "string", "value": " two\nlines "},
            },
            "outputs": {"model": {"type": "model"}, "plots": {"type": "folder"}},
            "env": {"MODE": "fast \u00e9"},
            "secret_env": {"API_KEY": "hunter2"},
        },
        display_name="four inputs",
    )
    response = signed_in(contributor).get(f"/w/{workspace.pk}/jobs/new/?clone={job.pk}")
    html = response.content.decode()
    form = response.context["form"]
    assert form["data_name_4"].value() == "d4" and form["data_version_4"].value() == penguins.pk
    assert form["values"].value() == 'code="007"\nflag=true\nnote=" two\\nlines "'
    assert form["model_outputs"].value() == "model" and form["folder_outputs"].value() == "plots"
    assert form["secret_env"].value() == "API_KEY=" and "hunter2" not in html
    assert form["env"].value() == "MODE=fast \u00e9"
    assert 'data-testid="code-summary"' in html
    # What the clone shows submits the same inputs back (the secret typed again).
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    response = post(signed_in(contributor), workspace, **(data | {"secret_env": "API_KEY=again", "network": ""}))
    assert response.status_code == 302, response.context["form"].errors
    clone = Job.objects.exclude(pk=job.pk).get()
    assert clone.spec["inputs"] == job.spec["inputs"]
    assert clone.spec["outputs"] == job.spec["outputs"] and clone.spec["env"] == job.spec["env"]


@pytest.mark.parametrize("value", ["007", "true", "1e3", " padded ", "plain text", "-4", "NaN", '"quoted"'])
def test_a_text_value_written_back_reads_as_the_same_text(value):
    assert _literal(_text(value).strip()) == value


def test_the_reader_cannot_open_the_submit_form(reader, workspace):
    assert signed_in(reader).get(f"/w/{workspace.pk}/jobs/new/?kind=command").status_code == 403
    assert CommandJobForm.kind == "command"


def test_a_jobs_logged_parameters_show_on_its_page_escaped(owner, workspace, cluster):
    job = make_job(workspace, cluster, owner, 1)
    client = signed_in(owner)
    assert 'data-testid="job-params"' not in client.get(f"/w/{workspace.pk}/jobs/{job.pk}/").content.decode()
    JobParam.objects.create(job=job, key="learning rate (\u03b7)", value="0.1")
    JobParam.objects.create(job=job, key="<script>alert(1)</script>", value="<b>x</b>")
    JobParam.objects.create(job=job, key="solver", value="")
    html = client.get(f"/w/{workspace.pk}/jobs/{job.pk}/").content.decode()
    assert 'data-testid="job-params"' in html and "3 logged by the job" in html
    assert "learning rate (\u03b7)" in html and "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    # Sorted by name, and in the live part the page polls while the job runs.
    live = client.get(f"/w/{workspace.pk}/jobs/{job.pk}/?part=live", HTTP_HX_REQUEST="true").content.decode()
    assert live.index("&lt;script&gt;") < live.index("learning rate") < live.index("solver")
