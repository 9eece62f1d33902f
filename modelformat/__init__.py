"""The model-file format: what a registered model version is made of, shared by training and serving.

Pure Python (numpy, pandas, scikit-learn, skops, ONNX): no Django, and nothing from the apps —
training writes these files, endpoints read them, and both import this package, never each other.

* ``modelio``         — the one saver and loader of skops model files (the reviewed allow-list, rule R2)
* ``signature``       — a model's input signature (JSON) and the validation of scoring payloads
* ``column_types``    — the semantic type of a column, guessed from its values (signature and training)
* ``onnx_export``     — the verified ONNX twin of a pipeline (``try_convert``) and its feed
* ``onnx_model``      — what the export needs to know about a fitted model before converting it
* ``onnx_converters`` — skl2onnx converters for what the studio's pipelines contain
* ``drift``           — reference profiles, PSI, data-quality counters for monitoring

The studio's own transformers (``CastColumns``, ``DatetimeParts``) stay in
``training/ml/transformers.py``: saved model files name them by that module path (the allow-list
lists them so), and this package recognises them by name rather than importing them.
"""
