"""The model page shows why a model has no ONNX twin in words, and keeps the technical text apart."""

import json

from training.registry_services import model_version_dir

from .conftest import register


def test_the_model_page_shows_the_readable_reason_and_folds_the_detail(client, owner, workspace):
    version = register(workspace, owner, name="no-twin", with_onnx=False)
    report = {
        "converted": False,
        "reason": "the model contains PriorOnly, which has no ONNX converter",
        "detail": "64-bit numbers: RuntimeError: [ONNXRuntimeError] : 1 : FAIL",
    }
    (model_version_dir(version) / "onnx_report.json").write_text(json.dumps(report))
    client.force_login(owner)
    page = client.get(f"/w/{workspace.pk}/models/{version.model_id}/v/{version.version}/").content.decode()
    assert "no (the model contains PriorOnly, which has no ONNX converter): served from the skops file" in page
    assert "<summary>Technical detail</summary>" in page
    # the technical text is only inside the folded detail
    assert page.count("ONNXRuntimeError") == 1
    assert page.index("<summary>Technical detail</summary>") < page.index("ONNXRuntimeError")
