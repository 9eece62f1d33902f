"""POST /score/<endpoint>/ — the key-authenticated scoring route (the only anonymous API, R3)."""

import random
import threading
import time

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from studio.api.errors import error_body

from . import serving
from .services import key_matches


def _error(status: int, code: str, message: str, *, headers=None) -> JsonResponse:
    response = JsonResponse(error_body(code, message), status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _mirror(runtime, deployment_name: str, body: bytes) -> None:
    """Score a copy of the request on the mirrored deployment; its answer is recorded, not returned."""
    if deployment_name not in runtime.deployments:
        return
    try:
        serving.score_request(runtime, body=body, started=time.perf_counter(), pinned=deployment_name, mirrored=True)
    except Exception:  # noqa: BLE001, S110 - recorded as a 500 already; a broken mirror never affects the caller
        pass


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
    outcome = serving.score_request(
        runtime, body=request.body, started=started, pinned=request.headers.get("X-Studio-Deployment")
    )
    if outcome.status == 200 and runtime.mirror and random.random() * 100 < runtime.mirror[1]:
        threading.Thread(target=_mirror, args=(runtime, runtime.mirror[0], request.body), daemon=True).start()
    return JsonResponse(outcome.body, status=outcome.status)
