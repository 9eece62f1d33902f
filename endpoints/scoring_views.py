"""POST /score/<endpoint>/ — the key-authenticated scoring route (the only anonymous API, R3).

The portal authenticates, checks the body size and throttles here (endpoints/admission.py), picks
the deployment by the traffic split, and forwards the request to a healthy replica of it
(endpoints/routing.py), which validates, scores and records monitoring. While a deployment has no
ready replica it is woken if it scaled to zero, and the portal scores in its own process
(STUDIO_SERVING_IN_PROCESS, the embedded default's fallback) or holds the request until a replica
is ready (STUDIO_REPLICA_WAIT_SECONDS), then answers 503 "starting" with Retry-After.
"""

import random
import threading
import time

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from studio.api.errors import error_body

from . import routing, serving
from .admission import admit

STARTING_RETRY_AFTER = 2  # seconds: a replica starts in about that


def _dispatch(runtime, *, body: bytes, authorization: str, started: float, pinned: str | None, mirrored=False):
    """Score one admitted request: on a replica, else in this process or 503. A response."""
    deployment = runtime.route(pinned)
    if deployment is not None:
        forwarded = {
            "endpoint_name": runtime.name,
            "deployment_id": deployment.id,
            "deployment_name": deployment.name,
            "body": body,
            "authorization": authorization,
            "mirrored": mirrored,
        }
        answer = routing.forward(**forwarded)
        # Mirrored copies never wake a deployment scaled to zero: a mirror is not worth a replica.
        coming = answer is None and not mirrored and routing.replica_coming(deployment.id)
        if coming and not settings.STUDIO_SERVING_IN_PROCESS:
            # A cold start (scaled to zero, or just deployed): the request waits for the replica.
            if routing.wait_for_replica(deployment.id, timeout=settings.STUDIO_REPLICA_WAIT_SECONDS):
                answer = routing.forward(**forwarded)
        if answer is not None:
            return HttpResponse(answer.body, status=answer.status, content_type="application/json")
        if not settings.STUDIO_SERVING_IN_PROCESS:
            serving.monitor.record(
                endpoint_id=runtime.id,
                deployment=deployment,
                status=503,
                latency_ms=(time.perf_counter() - started) * 1000,
                mirrored=mirrored,
            )
            message = f"{runtime.name}/{deployment.name} is starting: no replica is ready yet. Retry shortly."
            response = JsonResponse(error_body("starting", message), status=503)
            response["Retry-After"] = str(STARTING_RETRY_AFTER)
            return response
        pinned = deployment.name
    outcome = serving.score_request(runtime, body=body, started=started, pinned=pinned, mirrored=mirrored)
    return JsonResponse(outcome.body, status=outcome.status)


def _mirror(runtime, deployment_name: str, body: bytes, authorization: str) -> None:
    """Score a copy of the request on the mirrored deployment; its answer is recorded, not returned."""
    if deployment_name not in runtime.deployments:
        return
    try:
        _dispatch(
            runtime,
            body=body,
            authorization=authorization,
            started=time.perf_counter(),
            pinned=deployment_name,
            mirrored=True,
        )
    except Exception:  # noqa: BLE001, S110 - recorded as a 500 already; a broken mirror never affects the caller
        pass


@csrf_exempt
@login_not_required
def score(request, endpoint_name: str):
    started = time.perf_counter()
    # META, not request.headers: that would build a dict of every header for these two
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    runtime, refusal = admit(
        endpoint_name,
        method=request.method,
        query_keys=request.GET,
        authorization=authorization,
        content_length=int(request.META.get("CONTENT_LENGTH") or 0),
        started=started,
    )
    if refusal is not None:
        response = JsonResponse(refusal.body, status=refusal.status)
        for name, value in refusal.headers.items():
            response[name] = value
        return response
    body = request.body
    response = _dispatch(
        runtime,
        body=body,
        authorization=authorization,
        started=started,
        pinned=request.META.get("HTTP_X_STUDIO_DEPLOYMENT"),
    )
    if response.status_code == 200 and runtime.mirror and random.random() * 100 < runtime.mirror[1]:
        threading.Thread(target=_mirror, args=(runtime, runtime.mirror[0], body, authorization), daemon=True).start()
    return response
