"""Who may score, and how much: the checks before a scoring request reaches a model.

The portal's scoring URL and a serving replica reached directly run the same checks, in the same
order, with the same error bodies: no key in the URL, a bearer key of the endpoint (an unknown
endpoint and a wrong key look the same), a body within the size cap, the key's per-minute limit.
A request the portal forwards to a replica was throttled on the portal already; it carries the
portal's forwarding proof (`forwarding_proof`) so the replica does not count it a second time.
"""

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from functools import lru_cache

from django.conf import settings

from studio.api.errors import error_body

from . import serving
from .services import key_matches

KEY_PARAMETERS = ("key", "api_key", "api-key", "token", "access_token")
FORWARDED_HEADER = "X-Studio-Forwarded"


@dataclass(frozen=True)
class Refusal:
    """A request turned away before scoring: its status, JSON body and headers."""

    status: int
    body: dict
    headers: dict = field(default_factory=dict)


def _refuse(status: int, code: str, message: str, **headers) -> Refusal:
    return Refusal(status, error_body(code, message), {k.replace("_", "-"): v for k, v in headers.items()})


@lru_cache(maxsize=1)
def forwarding_proof() -> str:
    """What the portal sends a replica to say "authorised and throttled here": derived from the
    studio's key, which every process of one studio shares, and never from a request."""
    return hmac.new(settings.SECRET_KEY.encode(), b"studio-scoring-forward", hashlib.sha256).hexdigest()


def is_forwarded(presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(presented.encode(), forwarding_proof().encode())


def admit(
    endpoint_name: str,
    *,
    method: str,
    query_keys,
    authorization: str,
    content_length: int,
    started: float,
    count_against_limit: bool = True,
) -> tuple[serving.EndpointRuntime | None, Refusal | None]:
    """(the endpoint's runtime, None) if the request may be scored, else (None, the refusal).
    A throttled request is recorded in this process's monitoring as a 429."""
    if method != "POST":
        return None, _refuse(405, "method_not_allowed", "Send scoring requests with POST.", Allow="POST")
    if any(name in query_keys for name in KEY_PARAMETERS):
        return None, _refuse(
            401,
            "key_in_url",
            "Send the key in the Authorization header, never in the URL (URLs end up in logs).",
            WWW_Authenticate="Bearer",
        )
    if not authorization.startswith("Bearer "):
        return None, _refuse(
            401,
            "not_authenticated",
            "Send the endpoint's key as 'Authorization: Bearer <key>'.",
            WWW_Authenticate="Bearer",
        )
    runtime = serving.configs.get(endpoint_name)
    presented = authorization[7:].strip()
    which = key_matches(key1=runtime.key1, key2=runtime.key2, presented=presented) if runtime else None
    if which is None:  # an unknown endpoint and a wrong key look the same (no existence leak)
        return None, _refuse(401, "invalid_key", "The key is not valid for this endpoint.", WWW_Authenticate="Bearer")
    limit = settings.STUDIO_SCORING_MAX_BODY_BYTES
    if content_length > limit:
        return None, _refuse(413, "too_large", f"The request body is {content_length:,} bytes; the limit is {limit:,}.")
    if count_against_limit:
        prefix = (runtime.key1 if which == "primary" else runtime.key2)[0]
        retry_after = serving.throttle(prefix, runtime.requests_per_minute)
        if retry_after is not None:
            serving.monitor.record(
                endpoint_id=runtime.id, deployment=None, status=429, latency_ms=(time.perf_counter() - started) * 1000
            )
            return None, _refuse(
                429,
                "throttled",
                f"More than {runtime.requests_per_minute:,} requests this minute with this key. "
                f"Retry in {retry_after} s.",
                Retry_After=str(retry_after),
            )
    return runtime, None
