"""The scoring engine of predictive services: pure Python (numpy, pandas, scikit-learn, ONNX), no Django.

* ``predictor`` — ``Predictor`` (ONNX when verified, else skops) and the per-process cache
* ``batch``     — scoring a Parquet file in chunks

The model-file format they read (skops loading, signature and payload validation, the ONNX twin,
drift reference and counts) is the ``modelformat`` package, shared with training. The Django side
(``endpoints`` models, services and the scoring view) stores the JSON these functions return and
computes every file path from database rows (rule R1).
"""
