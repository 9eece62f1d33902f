"""The scoring engine of predictive services: pure Python (numpy, pandas, scikit-learn, ONNX), no Django.

* ``signature``   — a model's input signature (JSON) and the validation of scoring payloads
* ``onnx_export`` — the verified ONNX twin of a pipeline (``try_convert``)
* ``predictor``   — ``Predictor`` (ONNX when verified, else skops) and the per-process cache
* ``drift``       — reference profiles, PSI, data-quality counters for monitoring
* ``batch``       — scoring a Parquet file in chunks

The Django side (``endpoints`` models, services and the scoring view) stores the JSON these
functions return and computes every file path from database rows (rule R1).
"""

from .signature import PayloadError, Signature, build_signature, validate_payload

__all__ = ["PayloadError", "Signature", "build_signature", "validate_payload"]
