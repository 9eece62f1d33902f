"""Changes to experiments, the grouping of runs."""

import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from workspaces.models import Workspace
from workspaces.policy import Action, require
from workspaces.services import activity_record

from .models import Experiment

# Any printable text (MLflow's experiment names are free text): no control characters, not only
# spaces. The API's schema states the same pattern (ExperimentIn), so clients see the rule.
NAME_PATTERN = r"^[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f\s][^\x00-\x1f\x7f]*$"
NAME_MAX_LENGTH = 100
_NAME = re.compile(NAME_PATTERN)
NAME_RULE = "Use 1–100 characters, with no control characters."


def experiment_create(*, actor, workspace: Workspace, name: str, description: str = "") -> Experiment:
    """A new, empty experiment of the workspace (Contributors and Owners). Names are unique in a
    workspace; surrounding spaces are dropped."""
    require(actor, workspace, Action.WRITE)
    name = (name or "").strip()
    if len(name) > NAME_MAX_LENGTH or not _NAME.match(name):
        raise ValidationError({"name": NAME_RULE})
    description = (description or "").strip()
    if len(description) > 500:
        raise ValidationError({"description": "Use at most 500 characters."})
    if Experiment.objects.filter(workspace=workspace, name=name).exists():
        raise _name_taken()
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(
                workspace=workspace, name=name, description=description, created_by=actor
            )
    except IntegrityError:  # created by someone else meanwhile
        raise _name_taken() from None
    activity_record(
        workspace=workspace, actor=actor, verb="experiment_created", summary=f"{actor} created the experiment {name}"
    )
    return experiment


def _name_taken() -> ValidationError:
    return ValidationError({"name": ValidationError("An experiment of this name already exists.", code="conflict")})
