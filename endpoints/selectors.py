"""Read queries for endpoints and their monitoring, scoped to one workspace (or one user's)."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.utils import timezone

from modelformat.drift import ALERTED, INSUFFICIENT, drift_report, merge_counts, prediction_drift, worst_status
from studio.credentials import workspace_limit
from training.registry_selectors import model_version_json_file

from .models import Deployment, Endpoint, MonitoringBucket
from .serving import LATENCY_BUCKETS_MS, RequestCounts

RANGES = {
    "hour": (timedelta(hours=1), timedelta(minutes=1)),
    "day": (timedelta(days=1), timedelta(minutes=15)),
    "week": (timedelta(days=7), timedelta(hours=2)),
}
ERROR_RATE_ALERT = 0.05


def endpoint_list(*, workspace) -> QuerySet[Endpoint]:
    deployments = Deployment.objects.select_related("model_version", "model_version__model", "target")
    return (
        Endpoint.objects.filter(workspace=workspace)
        .prefetch_related(Prefetch("deployments", queryset=deployments))
        .order_by("name")
    )


def endpoint_get(*, workspace, endpoint_id) -> Endpoint:
    try:
        return endpoint_list(workspace=workspace).get(pk=int(endpoint_id))
    except (Endpoint.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Endpoint not found.") from None


def deployment_get(*, endpoint: Endpoint, deployment_id) -> Deployment:
    try:
        return endpoint.deployments.select_related("model_version", "target").get(pk=int(deployment_id))
    except (Deployment.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Deployment not found.") from None


def percentile_from_histogram(histogram: list, q: float) -> float | None:
    """The upper edge of the latency bucket holding the q-th quantile (ms)."""
    total = sum(histogram)
    if not total:
        return None
    need, running = q * total, 0
    for index, count in enumerate(histogram):
        running += count
        if running >= need:
            return LATENCY_BUCKETS_MS[index] if index < len(LATENCY_BUCKETS_MS) else LATENCY_BUCKETS_MS[-1] * 2
    return None


def _add_histograms(a: list, b: list) -> list:
    if not a:
        return list(b)
    if len(b) != len(a):
        return a  # another bucket layout (a process still on old code): not comparable, left out
    return [x + y for x, y in zip(a, b, strict=True)]


@dataclass(kw_only=True)
class DeploymentStats(RequestCounts):
    name: str
    histogram: list = field(default_factory=list)
    predicted: Counter = field(default_factory=Counter)
    quality: dict = field(default_factory=dict)
    mirrored: bool = False
    drift: dict | None = None
    prediction_drift: dict | None = None  # a regression's served predictions against its training target

    @property
    def error_rate(self) -> float:
        return (self.errors_4xx + self.errors_5xx) / self.requests if self.requests else 0.0

    def p(self, q: float) -> float | None:
        return percentile_from_histogram(self.histogram, q)


@dataclass
class Monitoring:
    since: datetime
    step: timedelta
    times: list
    series: dict  # deployment -> {"ok": [...], "4xx": [...], "5xx": [...], "p50": [...], "p95": [...], ...}
    deployments: dict  # deployment -> DeploymentStats over the whole range
    total_requests: int = 0


def monitoring(*, endpoint: Endpoint, range_name: str = "hour", now=None, buckets: list | None = None) -> Monitoring:
    """Traffic, latency, errors, predictions and drift per deployment over a time range.

    `buckets`: the endpoint's buckets already loaded (by minute, from at least the range's start),
    so a list of endpoints is read in one query (`endpoints_health`)."""
    span, step = RANGES.get(range_name, RANGES["hour"])
    now = now or timezone.now()
    since = now - span
    if buckets is None:
        buckets = MonitoringBucket.objects.filter(endpoint=endpoint, minute__gte=since).order_by("minute").iterator()
    else:
        buckets = [bucket for bucket in buckets if bucket.minute >= since]
    slots = int(span / step)
    times = [since + step * (i + 1) for i in range(slots)]
    series: dict[str, dict] = {}
    histograms: dict[str, list[list]] = {}
    stats: dict[str, DeploymentStats] = {}
    for bucket in buckets:
        name = bucket.deployment_name or "(no deployment)"
        key = f"{name} (mirror)" if bucket.mirrored else name
        index = min(slots - 1, max(0, int((bucket.minute - since) / step)))
        s = series.setdefault(key, {"ok": [0] * slots, "4xx": [0] * slots, "5xx": [0] * slots, "rows": [0] * slots})
        ok = bucket.requests - bucket.errors_4xx - bucket.errors_5xx - bucket.throttled
        s["ok"][index] += ok
        s["4xx"][index] += bucket.errors_4xx + bucket.throttled
        s["5xx"][index] += bucket.errors_5xx
        s["rows"][index] += bucket.rows
        per_slot = histograms.setdefault(key, [[] for _ in range(slots)])
        per_slot[index] = _add_histograms(per_slot[index], bucket.latency_histogram)
        st = stats.setdefault(key, DeploymentStats(name=key, mirrored=bucket.mirrored))
        st.add(bucket)
        st.histogram = _add_histograms(st.histogram, bucket.latency_histogram)
        st.predicted.update(bucket.predicted)
        if bucket.quality:
            st.quality = merge_counts(st.quality, bucket.quality) if st.quality else bucket.quality
    for key, per_slot in histograms.items():
        for q, label in ((0.5, "p50"), (0.9, "p90"), (0.95, "p95"), (0.99, "p99")):
            series[key][label] = [percentile_from_histogram(h, q) for h in per_slot]
    references = _references(endpoint)
    for key, st in stats.items():
        reference = references.get(key.replace(" (mirror)", ""))
        if reference and st.quality:
            st.drift = drift_report(reference, st.quality)
            st.prediction_drift = prediction_drift(reference, st.quality)
    return Monitoring(
        since=since,
        step=step,
        times=times,
        series=series,
        deployments=stats,
        total_requests=sum(s.requests for s in stats.values()),
    )


def _references(endpoint: Endpoint) -> dict:
    out = {}
    for deployment in endpoint.deployments.all():
        reference = model_version_json_file(version=deployment.model_version, name="reference_profile.json")
        if reference is not None:
            out[deployment.name] = reference
    return out


@dataclass
class Health:
    endpoint: Endpoint
    requests: int
    error_rate: float
    p95_ms: float | None
    drift_status: str
    alerts: list

    @property
    def status(self) -> str:
        if self.alerts:
            return "alerted"
        return "ok" if self.requests else "idle"


def endpoint_health(*, endpoint: Endpoint, now=None, buckets: list | None = None) -> Health:
    """The last hour at a glance (Home, lists), with the drift of the last day (`buckets`: the
    endpoint's buckets of the last day, already loaded)."""
    hour = monitoring(endpoint=endpoint, range_name="hour", now=now, buckets=buckets)
    day = monitoring(endpoint=endpoint, range_name="day", now=now, buckets=buckets)
    requests = sum(s.requests for s in hour.deployments.values() if not s.mirrored)
    errors = sum(s.errors_4xx + s.errors_5xx for s in hour.deployments.values() if not s.mirrored)
    histogram: list = []
    for s in hour.deployments.values():
        if not s.mirrored:
            histogram = _add_histograms(histogram, s.histogram)
    alerts = []
    error_rate = errors / requests if requests else 0.0
    if requests >= 20 and error_rate > ERROR_RATE_ALERT:
        alerts.append(
            {"kind": "errors", "message": f"{error_rate:.0%} of {requests:,} requests failed in the last hour"}
        )
    # The worst status of the day's drift reports; "Passed" only once some deployment has scored
    # enough rows to tell (an endpoint with three requests has not passed anything yet).
    statuses = [INSUFFICIENT]
    for name, s in day.deployments.items():
        if s.drift:
            for column, result in s.drift["columns"].items():
                if result["status"] == ALERTED:
                    alerts.append({"kind": "drift", "message": f"{name}: {column} drifted (PSI {result['psi']:.2f})"})
            statuses.append(s.drift["status"])
        shifted = s.prediction_drift
        if shifted:
            if shifted["status"] == ALERTED:
                alerts.append({"kind": "drift", "message": f"{name}: predictions drifted (PSI {shifted['psi']:.2f})"})
            statuses.append(shifted["status"])
    return Health(
        endpoint=endpoint,
        requests=requests,
        error_rate=error_rate,
        p95_ms=percentile_from_histogram(histogram, 0.95),
        drift_status=worst_status(statuses),
        alerts=alerts,
    )


def endpoints_health(*, endpoints, now=None) -> list[Health]:
    """The health of each endpoint, from one query for all their buckets of the last day (an
    endpoint without any is idle). Deployments come from `endpoint.deployments.all()`, so
    prefetch them with their model versions and models, as `endpoint_list` does."""
    endpoints = list(endpoints)
    now = now or timezone.now()
    buckets: dict[int, list[MonitoringBucket]] = {}
    for bucket in MonitoringBucket.objects.filter(
        endpoint__in=[e.pk for e in endpoints], minute__gte=now - RANGES["day"][0]
    ).order_by("minute"):
        buckets.setdefault(bucket.endpoint_id, []).append(bucket)
    return [
        endpoint_health(endpoint=e, now=now, buckets=buckets[e.pk])
        if e.pk in buckets
        else Health(e, 0, 0.0, None, INSUFFICIENT, [])
        for e in endpoints
    ]


def endpoints_health_for_user(*, user, limit: int = 20) -> list[Health]:
    deployments = Deployment.objects.select_related("model_version", "model_version__model")
    endpoints = Endpoint.objects.filter(workspace__memberships__user=user)
    if workspace_limit(user) is not None:
        endpoints = endpoints.filter(workspace_id=workspace_limit(user))
    endpoints = endpoints.select_related("workspace").prefetch_related(Prefetch("deployments", queryset=deployments))[
        :limit
    ]
    return endpoints_health(endpoints=endpoints)


def alerts_for_workspace(*, workspace) -> list[dict]:
    out = []
    for health in endpoints_health(endpoints=endpoint_list(workspace=workspace)):
        for alert in health.alerts:
            out.append({**alert, "endpoint": health.endpoint})
    return out


def deployments_of(model_versions) -> list[str]:
    """What keeps model versions from being deleted, for the registry: the deployments serving them."""
    names = [
        f"{d.endpoint.name}/{d.name}"
        for d in Deployment.objects.filter(model_version__in=model_versions).select_related("endpoint")[:5]
    ]
    return [f"deployed to {', '.join(names)}"] if names else []
