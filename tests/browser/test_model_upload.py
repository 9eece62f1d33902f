"""In Chromium: "Register from a file" on the models page uploads an ONNX file with its signature
from a data version, and lands on the new version's page; a pickle is refused with the advice."""

import pickle

import pytest
from playwright.sync_api import expect

from data.services import data_version_from_file
from tests.conftest import login
from tests.training import model_files as mf
from training.models import ModelVersion

pytestmark = [pytest.mark.browser]


def test_an_onnx_file_registered_from_the_models_page(new_page, contributor, workspace, tmp_path):
    frame = mf.messy_frame()
    csv = tmp_path / "messy customers.csv"
    frame.to_csv(csv, index=False)
    data_version = data_version_from_file(actor=contributor, workspace=workspace, path=csv, name="messy customers")
    onnx_path = tmp_path / "churn pipeline (skl2onnx).onnx"
    onnx_path.write_bytes(mf.onnx_bytes(mf.fitted_pipeline(frame), frame))
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"a": 1}))

    page = new_page()
    login(page, "bob")
    page.goto(f"/w/{workspace.pk}/models/")
    page.get_by_test_id("model-upload").click()
    form = page.get_by_test_id("model-upload-form")
    form.locator("input[type=file]").set_input_files(str(pickled))
    page.fill("input[name=name]", "churn-from-laptop")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_test_id("upload-error")).to_contain_text("skops.io.dump")

    form.locator("input[type=file]").set_input_files(str(onnx_path))
    page.select_option("select[name=data_version]", str(data_version.pk))
    page.fill("input[name=target_column]", mf.TARGET)
    page.fill("textarea[name=description]", "Trained on a laptop — ü ✓")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("churn-from-laptop", timeout=20000)
    expect(page.get_by_test_id("model-source")).to_contain_text("churn pipeline (skl2onnx).onnx")
    expect(page.locator("body")).to_contain_text("mean radius (mm)")
    version = ModelVersion.objects.get(model__workspace=workspace, model__name="churn-from-laptop")
    assert version.onnx_only and version.data_version_id == data_version.pk
    assert page.url.endswith(f"/models/{version.model_id}/v/1/")
