"""An OpenAPI document per endpoint, generated from its model's input signature."""

from django.conf import settings

JSON_TYPES = {
    "numeric": ("number", None),
    "integer": ("integer", None),
    "boolean": ("boolean", None),
    "datetime": ("string", "date-time"),
    "categorical": ("string", None),
    "text": ("string", None),
    "identifier": ("string", None),
}


def _column_schema(column: dict) -> dict:
    kind, fmt = JSON_TYPES.get(column["type"], ("string", None))
    schema: dict = {"type": kind}
    if fmt:
        schema["format"] = fmt
    if column.get("categories") and not column.get("categories_truncated"):
        schema["description"] = "Seen in training: " + ", ".join(map(str, column["categories"][:50]))
    if column.get("nullable", True):
        schema["nullable"] = True
    return schema


def _answer(version, classes: list) -> dict:
    """The 200 response: a regression's numbers, or a classifier's labels and probabilities."""
    if version is not None and version.task == "regression":
        target = version.target_column or "the target"
        predictions = {"type": "array", "items": {"type": "number"}, "description": f"Predicted {target}, one per row"}
        schema = {
            "type": "object",
            "properties": {"predictions": predictions, "deployment": {"type": "string"}, "model": {"type": "string"}},
        }
        example = {"predictions": [231500.0, 187250.5], "deployment": "blue", "model": str(version)}
        return {
            "description": f"Predicted values of {target} (numbers)",
            "content": {"application/json": {"schema": schema, "example": example}},
        }
    schema = {
        "type": "object",
        "properties": {
            "predictions": {"type": "array", "items": {"type": "string", "enum": [str(c) for c in classes]}},
            "probabilities": {
                "type": "array",
                "items": {"type": "object", "additionalProperties": {"type": "number"}},
            },
            "deployment": {"type": "string"},
            "model": {"type": "string"},
        },
    }
    return {"description": "Predictions and class probabilities", "content": {"application/json": {"schema": schema}}}


def _forecast_body(signature: dict, record: dict) -> dict:
    """A forecasting request: each series' recent history (with known-ahead future values), an
    origin in the stored history, or {} (from the end of the stored history)."""
    info = signature.get("forecast") or {}
    keys = [info.get("time_column"), *info.get("series_columns", [])]
    future = {
        "type": "object",
        "properties": {n: record["properties"][n] for n in [*keys, *info.get("known_ahead", [])] if n},
    }
    series = {"type": "object", "properties": {n: record["properties"][n] for n in info.get("series_columns", [])}}
    return {
        "type": "object",
        "properties": {
            "history": {"type": "array", "items": {"$ref": "#/components/schemas/Record"}, "maxItems": 10000},
            "future": {"type": "array", "items": future, "description": "Known-ahead values per forecast step"},
            "origin": {"type": "string", "format": "date-time", "description": "Cut the stored history here"},
            "series": {"type": "array", "items": series, "description": "The series to forecast (default all)"},
            "level": {"type": "number", "minimum": 0.5, "maximum": 0.99, "default": 0.9},
        },
    }


def _forecast_answer(signature: dict) -> dict:
    info = signature.get("forecast") or {}
    row = {
        "type": "object",
        "properties": {
            **{n: {"type": "string"} for n in info.get("series_columns", [])},
            info.get("time_column", "time"): {"type": "string", "format": "date-time"},
            "forecast": {"type": "number"},
            "lower": {"type": "number"},
            "upper": {"type": "number"},
        },
    }
    schema = {
        "type": "object",
        "properties": {
            "forecasts": {"type": "array", "items": row},
            "horizon": {"type": "integer"},
            "frequency": {"type": "string"},
            "level": {"type": "number"},
            "deployment": {"type": "string"},
            "model": {"type": "string"},
        },
    }
    return {
        "description": f"{info.get('horizon')} forecasts per series with interval bounds",
        "content": {"application/json": {"schema": schema}},
    }


def endpoint_openapi(endpoint, url: str) -> dict:
    deployment = next((d for d in endpoint.deployments.all() if endpoint.traffic.get(d.name)), None)
    deployment = deployment or next(iter(endpoint.deployments.all()), None)
    columns = deployment.model_version.signature.get("columns", []) if deployment else []
    classes = deployment.model_version.classes if deployment else []
    record = {
        "type": "object",
        "properties": {c["name"]: _column_schema(c) for c in columns},
        "required": [c["name"] for c in columns if c.get("required", True)],
    }
    error = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "fields": {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    },
                    "row": {"type": "integer", "description": "1-based row of the payload at fault"},
                },
            }
        },
    }
    document = {
        "openapi": "3.0.3",
        "info": {
            "title": f"{endpoint.name} scoring API",
            "version": str(endpoint.config_version),
            "description": endpoint.description or "A predictive service of Studio.",
        },
        "servers": [{"url": url.rsplit("/score/", 1)[0]}],
        "paths": {
            f"/score/{endpoint.name}/": {
                "post": {
                    "summary": "Score one or more rows",
                    "security": [{"endpointKey": []}],
                    "parameters": [
                        {
                            "name": "X-Studio-Deployment",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                            "description": "Pin one deployment (else the traffic split)",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Record"},
                                            "maxItems": 10000,
                                        },
                                        {
                                            "type": "object",
                                            "properties": {
                                                "inputs": {
                                                    "type": "array",
                                                    "items": {"$ref": "#/components/schemas/Record"},
                                                }
                                            },
                                        },
                                        {"$ref": "#/components/schemas/Record"},
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _answer(deployment.model_version if deployment else None, classes),
                        "400": {
                            "description": (
                                "Invalid payload (the column and row at fault), not JSON (parse_error), "
                                f"nested more than {settings.STUDIO_JSON_MAX_DEPTH} levels (too_deep) "
                                "or not valid Unicode (invalid_unicode)"
                            ),
                            "content": {"application/json": {"schema": error}},
                        },
                        "401": {
                            "description": "Missing or invalid key",
                            "content": {"application/json": {"schema": error}},
                        },
                        "413": {
                            "description": "Body or row count over the limit",
                            "content": {"application/json": {"schema": error}},
                        },
                        "429": {
                            "description": "Throttled (see Retry-After)",
                            "content": {"application/json": {"schema": error}},
                        },
                    },
                }
            }
        },
        "components": {
            "schemas": {"Record": record},
            "securitySchemes": {
                "endpointKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The endpoint's primary or secondary key",
                }
            },
        },
    }
    signature = deployment.model_version.signature if deployment else {}
    if signature.get("task") == "forecasting":
        post = document["paths"][f"/score/{endpoint.name}/"]["post"]
        post["summary"] = "Forecast the next steps of one or more series"
        post["requestBody"]["content"]["application/json"]["schema"] = _forecast_body(signature, record)
        post["responses"]["200"] = _forecast_answer(signature)
    return document
