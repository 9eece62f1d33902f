"""Endpoints, deployments, keys and traffic. Roles are checked here (R4); every change bumps the
endpoint's config version so serving processes pick it up within a second."""

import logging
import math
import time
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone
from django.utils.module_loading import import_string

from compute.models import ComputeTarget, Node, NodeStatus, TargetKind
from compute.services import (
    replica_nodes_orphaned,
    replicas_scale,
    serving_session_close,
    serving_session_open,
    target_create,
)
from studio.secrets import secret_matches, secret_new, secret_split
from studio.validation import model_validate
from training.models import ModelVersion
from workspaces.models import Workspace
from workspaces.policy import Action, require
from workspaces.services import activity_record

from .models import Deployment, DeploymentStatus, Endpoint


def warm_up(model_version) -> tuple[str, str | None]:
    """endpoints.serving.warm_up, imported on first use: the serving runtime imports pandas and the
    model loaders, and the admin imports these services in every process that starts Django (nodes too)."""
    return import_string("endpoints.serving.warm_up")(model_version)


log = logging.getLogger("studio.serving")

KEY_LABEL = "sk"
MAX_REPLICAS = 20
AUTOSCALE_DEFAULTS = {"min_replicas": 1, "target_in_flight": 4, "scale_in_seconds": 300}
AUTOSCALE_FIELDS = ("min_replicas", "max_replicas", "target_in_flight", "scale_in_seconds")
UNCHANGED = object()  # deployment_update: leave autoscaling as it is
# The autoscaler records that the load still needs the current replicas at most this often.
BUSY_MARK_SECONDS = 5


@dataclass(frozen=True)
class EndpointKeys:
    endpoint: Endpoint
    primary: str | None = None
    secondary: str | None = None


def _bump(endpoint: Endpoint) -> None:
    Endpoint.objects.filter(pk=endpoint.pk).update(config_version=F("config_version") + 1)


def _stripped(name) -> str:
    return name.strip() if isinstance(name, str) else ""


def endpoint_create(
    *, actor, workspace: Workspace, name: str, description: str = "", requests_per_minute: int = 6000
) -> EndpointKeys:
    """Create an endpoint with a primary and a secondary key, returned once (stored hashed, R5)."""
    require(actor, workspace, Action.WRITE)
    name = _stripped(name)
    description = description or ""
    model_validate(Endpoint(workspace=workspace, name=name, description=description), fields=["name", "description"])
    if Endpoint.objects.filter(name=name).exists():
        raise ValidationError(
            {
                "name": ValidationError(
                    f"The endpoint name {name} is taken; scoring URLs are unique. Pick another.", code="conflict"
                )
            }
        )
    _check_rate(requests_per_minute)
    primary, secondary = secret_new(KEY_LABEL), secret_new(KEY_LABEL)
    with transaction.atomic():
        endpoint = Endpoint.objects.create(
            workspace=workspace,
            name=name,
            description=description,
            key1_prefix=primary.prefix,
            key1_hash=primary.hash,
            key2_prefix=secondary.prefix,
            key2_hash=secondary.hash,
            requests_per_minute=requests_per_minute,
            created_by=actor,
        )
        activity_record(
            workspace=workspace, actor=actor, verb="endpoint_created", summary=f"{actor} created the endpoint {name}"
        )
    return EndpointKeys(endpoint, primary.plaintext, secondary.plaintext)


def endpoint_create_with_cluster(*, actor, workspace: Workspace, cluster_name: str, **fields) -> EndpointKeys:
    """Create an inference cluster and an endpoint to deploy on it, both or neither (the New
    endpoint form offers the cluster before the one-time keys are shown). The cluster's errors
    are reported on `inference_cluster`."""
    with transaction.atomic():
        try:
            target_create(actor=actor, workspace=workspace, kind=TargetKind.INFERENCE, name=cluster_name)
        except ValidationError as exc:
            raise ValidationError({"inference_cluster": exc.messages}) from exc
        return endpoint_create(actor=actor, workspace=workspace, **fields)


def _check_rate(value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1_000_000:
        raise ValidationError({"requests_per_minute": ["Give 1 to 1,000,000 requests per minute per key."]})


def endpoint_update(
    *, actor, endpoint: Endpoint, description: str | None = None, requests_per_minute: int | None = None
) -> Endpoint:
    require(actor, endpoint.workspace, Action.WRITE)
    if description is not None:
        endpoint.description = description
        model_validate(endpoint, fields=["description"])  # too long is refused, never cut
    if requests_per_minute is not None:
        _check_rate(requests_per_minute)
        endpoint.requests_per_minute = requests_per_minute
    endpoint.save(update_fields=["description", "requests_per_minute", "updated_at"])
    _bump(endpoint)
    return endpoint


def key_regenerate(*, actor, endpoint: Endpoint, which: str) -> EndpointKeys:
    """Replace the primary or secondary key; the old one stops working within a second."""
    require(actor, endpoint.workspace, Action.WRITE)
    if which not in ("primary", "secondary"):
        raise ValidationError({"which": ["Choose primary or secondary."]})
    key = secret_new(KEY_LABEL)
    field = "key1" if which == "primary" else "key2"
    with transaction.atomic():
        Endpoint.objects.filter(pk=endpoint.pk).update(**{f"{field}_prefix": key.prefix, f"{field}_hash": key.hash})
        _bump(endpoint)
        activity_record(
            workspace=endpoint.workspace,
            actor=actor,
            verb="endpoint_key",
            summary=f"{actor} regenerated the {which} key of {endpoint.name}",
        )
    endpoint.refresh_from_db()
    return EndpointKeys(endpoint, **{which: key.plaintext})


def key_matches(*, key1: tuple[str, str], key2: tuple[str, str], presented: str) -> str | None:
    """'primary' or 'secondary' if `presented` is one of the endpoint's keys (constant-time)."""
    parts = secret_split(presented or "", KEY_LABEL)
    if parts is None:
        return None
    prefix, random_part = parts
    for which, (stored_prefix, stored_hash) in (("primary", key1), ("secondary", key2)):
        if stored_prefix and prefix == stored_prefix and secret_matches(stored_hash, random_part):
            return which
    return None


def endpoint_delete(*, actor, endpoint: Endpoint) -> None:
    require(actor, endpoint.workspace, Action.WRITE)
    with transaction.atomic():
        name, workspace = endpoint.name, endpoint.workspace
        serving_session_close(deployment_ids=list(endpoint.deployments.values_list("pk", flat=True)))
        endpoint.delete()
        activity_record(
            workspace=workspace, actor=actor, verb="endpoint_deleted", summary=f"{actor} deleted the endpoint {name}"
        )


def _checked_replicas(replicas) -> int:
    if not isinstance(replicas, int) or isinstance(replicas, bool) or not 1 <= replicas <= MAX_REPLICAS:
        raise ValidationError({"replicas": [f"Give 1 to {MAX_REPLICAS} replicas."]})
    return replicas


def _checked_autoscale(autoscale) -> dict:
    """The autoscaling settings, defaults filled in: min and max replicas (min 0 scales to zero),
    the requests in flight per replica to aim at, and the seconds under that before scaling in."""
    if not isinstance(autoscale, dict):
        raise ValidationError({"autoscale": ["Give min_replicas, max_replicas, target_in_flight, scale_in_seconds."]})
    unknown = sorted(set(autoscale) - {"max_replicas", *AUTOSCALE_DEFAULTS})
    if unknown:
        raise ValidationError({"autoscale": [f"Unknown setting {unknown[0]!r}."]})
    values = AUTOSCALE_DEFAULTS | {"max_replicas": None} | autoscale
    limits = {
        "min_replicas": (0, MAX_REPLICAS),
        "max_replicas": (1, MAX_REPLICAS),
        "target_in_flight": (1, 1000),
        "scale_in_seconds": (10, 86400),
    }
    for field, (low, high) in limits.items():
        value = values[field]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValidationError({"autoscale": [f"{field} must be a whole number from {low} to {high}."]})
    if values["min_replicas"] > values["max_replicas"]:
        raise ValidationError({"autoscale": ["min_replicas must not be more than max_replicas."]})
    return values


def _clamped(replicas: int, autoscale: dict) -> int:
    """Replicas within the autoscaling range; at least one to begin with (min 0 scales in later)."""
    return min(max(replicas, autoscale["min_replicas"], 1), autoscale["max_replicas"])


def deployment_create(
    *,
    actor,
    endpoint: Endpoint,
    name: str,
    model_version: ModelVersion,
    target: ComputeTarget,
    replicas: int = 1,
    autoscale: dict | None = None,
) -> Deployment:
    """Deploy a registered model version. It is loaded and scored once here (a sample row), so a
    broken model never takes traffic; the first deployment of an endpoint gets 100 % of it. With
    `autoscale` its replicas follow the load between min and max (`replicas` is where it starts)."""
    require(actor, endpoint.workspace, Action.WRITE)
    name = _stripped(name)
    model_validate(Deployment(endpoint=endpoint, name=name), fields=["name"])
    if model_version.model.workspace_id != endpoint.workspace_id:
        raise ValidationError(
            {"model_version": ValidationError("Choose a model registered in this workspace.", code="not_found")}
        )
    if target.workspace_id != endpoint.workspace_id or target.kind != TargetKind.INFERENCE:
        raise ValidationError(
            {"target": ValidationError("Choose an inference cluster of this workspace.", code="not_found")}
        )
    replicas = _checked_replicas(replicas)
    if autoscale is not None:
        autoscale = _checked_autoscale(autoscale)
        replicas = _clamped(replicas, autoscale)
    if endpoint.deployments.filter(name=name).exists():
        raise ValidationError(
            {"name": ValidationError(f"{endpoint.name} already has a deployment called {name}.", code="conflict")}
        )

    started = time.perf_counter()
    backend, error = warm_up(model_version)
    if error:
        raise ValidationError({"model_version": [f"{model_version} could not be loaded and scored: {error}"]})
    with transaction.atomic():
        deployment = Deployment.objects.create(
            endpoint=endpoint,
            name=name,
            model_version=model_version,
            target=target,
            replicas=replicas,
            **(autoscale or {}),
            last_busy_at=timezone.now() if autoscale else None,
            status=DeploymentStatus.READY,
            backend=backend,
            created_by=actor,
            status_reason=f"loaded and checked in {time.perf_counter() - started:.2f} s ({backend})",
        )
        serving_session_open(
            target=target, deployment_id=deployment.pk, deployment_name=str(deployment), replicas=replicas
        )
        if not endpoint.traffic:
            Endpoint.objects.filter(pk=endpoint.pk).update(traffic={name: 100})
        _bump(endpoint)
        activity_record(
            workspace=endpoint.workspace,
            actor=actor,
            verb="deployment_created",
            summary=f"{actor} deployed {model_version} to {endpoint.name}/{name}",
        )
    return deployment


def deployment_update(
    *,
    actor,
    deployment: Deployment,
    replicas: int | None = None,
    model_version: ModelVersion | None = None,
    autoscale=UNCHANGED,
) -> Deployment:
    """Change replicas or autoscaling (`autoscale=None` turns it off at the current count), or
    replace the model in place (requests keep flowing: the old model serves until the new one is
    loaded)."""
    endpoint = deployment.endpoint
    require(actor, endpoint.workspace, Action.WRITE)
    was = deployment.replicas
    if replicas is not None:
        deployment.replicas = _checked_replicas(replicas)
    if autoscale is None:
        deployment.min_replicas = deployment.max_replicas = None
        deployment.replicas = max(deployment.replicas, 1)
    elif autoscale is not UNCHANGED:
        current = {field: getattr(deployment, field) for field in AUTOSCALE_DEFAULTS} if deployment.autoscales else {}
        chosen = _checked_autoscale(current | {"max_replicas": deployment.max_replicas} | autoscale)
        for field, value in chosen.items():
            setattr(deployment, field, value)
        deployment.replicas = _clamped(deployment.replicas, chosen)
        deployment.last_busy_at = timezone.now()  # the idle time before scaling in counts from now
    elif replicas is not None and deployment.autoscales:
        raise ValidationError(
            {
                "replicas": [
                    f"{deployment.name} autoscales between {deployment.min_replicas} and {deployment.max_replicas} "
                    "replicas: change its autoscale settings, or turn autoscaling off."
                ]
            }
        )
    replicas_changed = deployment.replicas != was
    if model_version is not None and model_version.pk != deployment.model_version_id:
        if model_version.model.workspace_id != endpoint.workspace_id:
            raise ValidationError(
                {"model_version": ValidationError("Choose a model registered in this workspace.", code="not_found")}
            )

        backend, error = warm_up(model_version)
        if error:
            raise ValidationError({"model_version": [f"{model_version} could not be loaded and scored: {error}"]})
        deployment.model_version, deployment.backend = model_version, backend
        deployment.status_reason = f"model replaced by {model_version}"
    with transaction.atomic():
        deployment.save()
        if replicas_changed:  # metered from now on at the new count
            serving_session_open(
                target=deployment.target,
                deployment_id=deployment.pk,
                deployment_name=str(deployment),
                replicas=deployment.replicas,
            )
        _bump(endpoint)
    return deployment


def deployment_delete(*, actor, deployment: Deployment) -> None:
    """Remove a deployment; refused while it takes live traffic (move the traffic first)."""
    endpoint = Endpoint.objects.get(pk=deployment.endpoint_id)
    require(actor, endpoint.workspace, Action.WRITE)
    if endpoint.traffic.get(deployment.name, 0) > 0 and len(endpoint.traffic) > 1:
        raise ValidationError(
            f"{deployment.name} takes {endpoint.traffic[deployment.name]} % of the traffic. Set its share to 0 first.",
            code="conflict",
        )
    with transaction.atomic():
        traffic = {k: v for k, v in endpoint.traffic.items() if k != deployment.name}
        mirror = "" if endpoint.mirror_deployment == deployment.name else endpoint.mirror_deployment
        Endpoint.objects.filter(pk=endpoint.pk).update(
            traffic=traffic, mirror_deployment=mirror, mirror_percent=endpoint.mirror_percent if mirror else 0
        )
        serving_session_close(deployment_ids=[deployment.pk])
        deployment.delete()
        _bump(endpoint)
        activity_record(
            workspace=endpoint.workspace,
            actor=actor,
            verb="deployment_deleted",
            summary=f"{actor} removed the deployment {endpoint.name}/{deployment.name}",
        )


def traffic_set(
    *, actor, endpoint: Endpoint, traffic: dict, mirror_deployment: str = "", mirror_percent: int = 0
) -> Endpoint:
    """Split live traffic in whole percents (summing to 100) and optionally mirror a share of it to
    a deployment whose answers are recorded but not returned."""
    require(actor, endpoint.workspace, Action.WRITE)
    names = set(endpoint.deployments.values_list("name", flat=True))
    if not isinstance(traffic, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100 for v in traffic.values()
    ):
        raise ValidationError({"traffic": ["Give whole percents from 0 to 100 per deployment."]})
    unknown = sorted(set(traffic) - names)
    if unknown:
        raise ValidationError(
            {"traffic": ValidationError(f"{endpoint.name} has no deployment {', '.join(unknown)}.", code="not_found")}
        )
    if names and sum(traffic.values()) != 100:
        raise ValidationError({"traffic": [f"The shares add up to {sum(traffic.values())} %; they must make 100 %."]})
    if mirror_deployment:
        if mirror_deployment not in names:
            raise ValidationError(
                {
                    "mirror_deployment": ValidationError(
                        f"{endpoint.name} has no deployment {mirror_deployment}.", code="not_found"
                    )
                }
            )
        if traffic.get(mirror_deployment, 0) > 0:
            raise ValidationError({"mirror_deployment": ["A mirrored deployment must take no live traffic."]})
        if not isinstance(mirror_percent, int) or not 1 <= mirror_percent <= 100:
            raise ValidationError({"mirror_percent": ["Mirror 1 to 100 % of the requests."]})
    else:
        mirror_percent = 0
    with transaction.atomic():
        Endpoint.objects.filter(pk=endpoint.pk).update(
            traffic={k: v for k, v in traffic.items() if v > 0} or {},
            mirror_deployment=mirror_deployment or "",
            mirror_percent=mirror_percent,
        )
        _bump(endpoint)
        split = ", ".join(f"{k} {v}%" for k, v in traffic.items() if v)
        activity_record(
            workspace=endpoint.workspace,
            actor=actor,
            verb="endpoint_traffic",
            summary=f"{actor} set {endpoint.name}'s traffic: {split or 'none'}"
            + (f", mirroring {mirror_percent}% to {mirror_deployment}" if mirror_deployment else ""),
        )
    endpoint.refresh_from_db()
    return endpoint


# --- Serving replicas ---------------------------------------------------------------------------------
def replicas_reconcile() -> int:
    """Autoscale, then give every ready deployment as many live replica nodes as its `replicas`
    (a lost one is replaced; fewer wanted, the surplus leaves) and stop the replicas of removed
    deployments. The local agent calls this every tick; its processes follow the nodes. Returns how
    many deployments changed. Two queries when nothing changes."""
    deployments = list(
        Deployment.objects.filter(status=DeploymentStatus.READY, target__kind=TargetKind.INFERENCE).only(
            "pk",
            "endpoint",
            "target",
            "replicas",
            "min_replicas",
            "max_replicas",
            "target_in_flight",
            "scale_in_seconds",
            "last_busy_at",
        )
    )
    serving = [NodeStatus.IDLE, NodeStatus.BUSY]
    live = {
        row["deployment_id"]: row
        for row in Node.objects.filter(deployment_id__isnull=False, status__in=NodeStatus.live())
        .values("deployment_id")
        .annotate(
            n=Count("pk"),
            ready=Count("pk", filter=Q(status__in=serving)),
            load=Sum("in_flight", filter=Q(status__in=serving)),
        )
    }
    changed = 0
    for deployment in deployments:
        row = live.get(deployment.pk, {})
        if deployment.autoscales:
            deployment_autoscale(deployment=deployment, in_flight=row.get("load") or 0, ready=row.get("ready", 0))
        if row.get("n", 0) != deployment.replicas:
            target = ComputeTarget.objects.get(pk=deployment.target_id)
            replicas_scale(target=target, deployment_id=deployment.pk, want=deployment.replicas)
            changed += 1
    if set(live) - {deployment.pk for deployment in deployments}:
        changed += replica_nodes_orphaned(deployment_ids={deployment.pk for deployment in deployments})
    return changed


def deployment_autoscale(*, deployment: Deployment, in_flight: int, ready: int) -> None:
    """Set an autoscaled deployment's replicas for the load its `ready` replicas last reported
    (requests in flight, averaged over a heartbeat): out at once to what the load needs, in only
    after the load has needed fewer for `scale_in_seconds` with every replica serving (a replica
    still starting has not shown what it can take). Writes only when something changes."""
    needed = math.ceil(in_flight / deployment.target_in_flight)
    want = min(max(needed, deployment.min_replicas), deployment.max_replicas)
    now = timezone.now()
    update = {}
    if want >= deployment.replicas or ready < deployment.replicas:
        if deployment.last_busy_at is None or now - deployment.last_busy_at >= timedelta(seconds=BUSY_MARK_SECONDS):
            update["last_busy_at"] = now
        if want > deployment.replicas:
            update |= {"replicas": want, "last_busy_at": now}
    elif deployment.last_busy_at is None:  # just set up: the idle time counts from now
        update["last_busy_at"] = now
    elif now - deployment.last_busy_at >= timedelta(seconds=deployment.scale_in_seconds):
        update |= {"replicas": want, "last_busy_at": now}
    if not update:
        return
    with transaction.atomic():
        Deployment.objects.filter(pk=deployment.pk).update(**update)
        if update.get("replicas", deployment.replicas) != deployment.replicas:
            log.info(
                "autoscaling %s: %s -> %s replicas (%s in flight)",
                _label(deployment),
                deployment.replicas,
                want,
                in_flight,
            )
            target = ComputeTarget.objects.get(pk=deployment.target_id)
            serving_session_open(
                target=target, deployment_id=deployment.pk, deployment_name=_label(deployment), replicas=want
            )
    for field, value in update.items():
        setattr(deployment, field, value)


def deployment_wake(*, deployment_id: int) -> bool:
    """A request came for a deployment scaled to zero: one replica is wanted again (the agent
    starts it; metering starts now). False when the deployment is not at zero."""
    with transaction.atomic():
        deployment = (
            Deployment.objects.select_for_update()
            .select_related("target", "endpoint")
            .filter(pk=deployment_id, replicas=0, max_replicas__gte=1, status=DeploymentStatus.READY)
            .first()
        )
        if deployment is None:
            return False
        Deployment.objects.filter(pk=deployment.pk).update(replicas=1, last_busy_at=timezone.now())
        serving_session_open(
            target=deployment.target, deployment_id=deployment.pk, deployment_name=str(deployment), replicas=1
        )
    return True


def _label(deployment: Deployment) -> str:
    endpoint = Endpoint.objects.filter(pk=deployment.endpoint_id).values_list("name", flat=True).first()
    return f"{endpoint}/{deployment.name}"
