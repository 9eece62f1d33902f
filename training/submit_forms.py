"""The job kinds the "Submit a job" page and "Clone and edit" offer, each with the dotted path of its form.

Apps above training add theirs with `submit_form_register` when Django starts (`AppConfig.ready`). A
form is imported when a page first needs it: the forms import what checks their fields (pandas,
scikit-learn's algorithm table), and every process starts Django, nodes included, which never show one.
"""

from django.utils.module_loading import import_string

from compute.jobs.diagnostic import DIAGNOSTIC

from .models import TrainingJobKind

SUBMIT_FORMS: dict[str, str] = {
    TrainingJobKind.TRAIN: "training.forms.TrainJobForm",
    DIAGNOSTIC: "training.forms.DiagnosticJobForm",
}


def submit_form_register(kind: str, form_path: str) -> None:
    SUBMIT_FORMS[kind] = form_path


def submit_form_class(kind: str) -> type | None:
    path = SUBMIT_FORMS.get(kind)
    return import_string(path) if path else None
