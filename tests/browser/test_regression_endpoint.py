"""A regression endpoint in a real browser: the Test tab scores the sample row and shows a number,
and the model version page says what the model predicts."""

import json
import re

import pytest
from playwright.sync_api import expect

from compute.models import TargetKind
from compute.services import target_create
from endpoints import services as endpoint_services
from tests.conftest import login
from tests.endpoints.test_regression_serving import register_regression

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_test_tab_shows_a_predicted_number(new_page, owner, workspace):
    inference = target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving").target
    version = register_regression(workspace, owner)
    created = endpoint_services.endpoint_create(actor=owner, workspace=workspace, name="prices-web")
    endpoint_services.deployment_create(
        actor=owner, endpoint=created.endpoint, name="blue", model_version=version, target=inference
    )
    page = new_page()
    login(page, "alice")
    page.goto(f"/w/{workspace.pk}/endpoints/{created.endpoint.pk}/?tab=test")
    expect(page.get_by_text("predicted Sale Price ($) (a number)")).to_be_visible()
    page.get_by_test_id("test-score").click()
    response = page.get_by_test_id("test-response")
    expect(response).to_contain_text('"predictions"', timeout=15_000)
    body = json.loads(response.inner_text())
    assert isinstance(body["predictions"][0], float) and "probabilities" not in body

    page.goto(f"/w/{workspace.pk}/models/{version.model_id}/v/{version.version}/")
    expect(page.get_by_test_id("model-task")).to_have_text(
        re.compile(r"Regression · hist_gradient_boosting predicts Sale Price \(\$\) \(number\)")
    )
