"""Name and length rules live on the models and the services check them with full_clean(): one
message however a name is wrong, and a long description refused rather than cut."""

import pytest
from django.core.exceptions import ValidationError

from compute.models import TARGET_NAME_MESSAGE, ComputeTarget
from data.models import ASSET_NAME_MESSAGE, DataAsset
from studio.validation import model_validate
from training.models import MODEL_NAME_MESSAGE, RegisteredModel
from workspaces.models import Workspace


@pytest.mark.parametrize(
    ("model", "message"),
    [(ComputeTarget, TARGET_NAME_MESSAGE), (DataAsset, ASSET_NAME_MESSAGE), (RegisteredModel, MODEL_NAME_MESSAGE)],
)
@pytest.mark.parametrize("name", ["", "x" * 300, "!bad name", "a\u0000b"])
def test_a_wrong_name_gets_its_rule_s_one_message(model, message, name):
    with pytest.raises(ValidationError) as refused:
        model_validate(model(name=name), fields=["name"])
    assert refused.value.message_dict == {"name": [message]}


@pytest.mark.parametrize("model", [Workspace, DataAsset, RegisteredModel])
def test_a_description_over_2000_characters_is_refused_and_2000_pass(model):
    model_validate(model(description="d" * 2000), fields=["description"])
    with pytest.raises(ValidationError) as refused:
        model_validate(model(description="d" * 2001), fields=["description"])
    assert refused.value.message_dict == {"description": ["Use at most 2,000 characters."]}


def test_good_names_pass():
    model_validate(ComputeTarget(name="cpu-cluster"), fields=["name"])
    model_validate(DataAsset(name="Churn (2024) v1.2"), fields=["name"])
    model_validate(RegisteredModel(name="churn_model.v2"), fields=["name"])
