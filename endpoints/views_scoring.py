"""POST /score/<endpoint>/ — the key-authenticated scoring route (the only anonymous API, R3)."""

import random
import threading
import time

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from endpoints.scoring.signature import PayloadError
from studio.api.errors import error_body
from studio.json_limits import JsonLimitError, json_loads_checked

from . import serving
from .services import key_matches


def _error(status: int, code: str, message: str, *, field=None, row=None, headers=None) -> JsonResponse:
    response = JsonResponse(error_body(code, message, {field: [message]} if field else None, row=row), status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _bad_body(runtime, deployment, started: float, code: str, message: str) -> JsonResponse:
    """A 400 for a body that is not usable JSON, counted in monitoring as the caller's error."""
    serving.monitor.record(
        endpoint_id=runtime.id, deployment=deployment, status=400, latency_ms=(time.perf_counter() - started) * 1000
    )
    return _error(400, code, message)


def _mirror(runtime, deployment_name: str, payload) -> None:
    """Score a copy of the request on the mirrored deployment; its answer is recorded, not returned."""
    deployment = runtime.deployments.get(deployment_name)
    if deployment is None:
        return
    started = time.perf_counter()
    try:
        predictor = deployment.predictor()
        batch = predictor.signature.validate_columns(payload, max_rows=settings.STUDIO_SCORING_MAX_ROWS)
        result = predictor.predict_batch(batch)
        serving.monitor.record(
            endpoint_id=runtime.id,
            deployment=deployment,
            status=200,
            mirrored=True,
            latency_ms=(time.perf_counter() - started) * 1000,
            rows=batch.n_rows,
            predictions=result["predictions"],
            batch=batch,
        )
    except PayloadError as exc:
        serving.monitor.record(
            endpoint_id=runtime.id,
            deployment=deployment,
            status=exc.status,
            mirrored=True,
            latency_ms=(time.perf_counter() - started) * 1000,
            refusal=exc,
        )
    except Exception:  # noqa: BLE001 - a broken mirror never affects the caller
        serving.monitor.record(
            endpoint_id=runtime.id,
            deployment=deployment,
            status=500,
            mirrored=True,
            latency_ms=(time.perf_counter() - started) * 1000,
        )


@csrf_exempt
@login_not_required
def score(request, endpoint_name: str):
    started = time.perf_counter()
    if request.method != "POST":
        return _error(405, "method_not_allowed", "Send scoring requests with POST.", headers={"Allow": "POST"})
    if any(name in request.GET for name in ("key", "api_key", "api-key", "token", "access_token")):
        return _error(
            401,
            "key_in_url",
            "Send the key in the Authorization header, never in the URL (URLs end up in logs).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return _error(
            401,
            "not_authenticated",
            "Send the endpoint's key as 'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    runtime = serving.configs.get(endpoint_name)
    presented = header[7:].strip()
    which = key_matches(key1=runtime.key1, key2=runtime.key2, presented=presented) if runtime else None
    if which is None:  # an unknown endpoint and a wrong key look the same (no existence leak)
        return _error(
            401, "invalid_key", "The key is not valid for this endpoint.", headers={"WWW-Authenticate": "Bearer"}
        )
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > settings.STUDIO_SCORING_MAX_BODY_BYTES:
        return _error(
            413,
            "too_large",
            f"The request body is {length:,} bytes; the limit is {settings.STUDIO_SCORING_MAX_BODY_BYTES:,}.",
        )
    prefix = (runtime.key1 if which == "primary" else runtime.key2)[0]
    retry_after = serving.throttle(prefix, runtime.requests_per_minute)
    if retry_after is not None:
        serving.monitor.record(
            endpoint_id=runtime.id, deployment=None, status=429, latency_ms=(time.perf_counter() - started) * 1000
        )
        return _error(
            429,
            "throttled",
            f"More than {runtime.requests_per_minute:,} requests this minute with this key. Retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )
    deployment = runtime.route(request.headers.get("X-Studio-Deployment"))
    if deployment is None:
        pinned = request.headers.get("X-Studio-Deployment")
        if pinned:
            return _error(
                400, "unknown_deployment", f"{runtime.name} has no deployment {pinned!r}.", field="X-Studio-Deployment"
            )
        return _error(503, "no_deployment", f"{runtime.name} has no deployment taking traffic yet.")
    try:
        payload = json_loads_checked(request.body or b"null", max_depth=settings.STUDIO_JSON_MAX_DEPTH)
    except JsonLimitError as exc:  # too deep or not Unicode: refused before parsing
        return _bad_body(runtime, deployment, started, exc.code, exc.message)
    except ValueError as exc:
        return _bad_body(runtime, deployment, started, "parse_error", f"The body is not valid JSON: {exc}")
    try:
        predictor = deployment.predictor()
        batch = predictor.signature.validate_columns(payload, max_rows=settings.STUDIO_SCORING_MAX_ROWS)
        result = predictor.predict_batch(batch)
    except PayloadError as exc:
        serving.monitor.record(
            endpoint_id=runtime.id,
            deployment=deployment,
            status=exc.status,
            refusal=exc,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        return _error(exc.status, exc.code, str(exc), field=exc.field, row=exc.row)
    except Exception:
        serving.monitor.record(
            endpoint_id=runtime.id, deployment=deployment, status=500, latency_ms=(time.perf_counter() - started) * 1000
        )
        raise
    if runtime.mirror and random.random() * 100 < runtime.mirror[1]:
        threading.Thread(target=_mirror, args=(runtime, runtime.mirror[0], payload), daemon=True).start()
    response = JsonResponse({**result, "deployment": deployment.name, "model": deployment.model_label})
    serving.monitor.record(
        endpoint_id=runtime.id,
        deployment=deployment,
        status=200,
        rows=batch.n_rows,
        latency_ms=(time.perf_counter() - started) * 1000,
        predictions=result["predictions"],
        batch=batch,
    )
    return response
