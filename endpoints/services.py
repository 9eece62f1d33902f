"""Endpoints, deployments, keys and traffic. Roles are checked here (R4); every change bumps the
endpoint's config version so serving processes pick it up within a second."""

import time
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F
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


KEY_LABEL = "sk"
MAX_REPLICAS = 20


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


def deployment_create(
    *, actor, endpoint: Endpoint, name: str, model_version: ModelVersion, target: ComputeTarget, replicas: int = 1
) -> Deployment:
    """Deploy a registered model version. It is loaded and scored once here (a sample row), so a
    broken model never takes traffic; the first deployment of an endpoint gets 100 % of it."""
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
    if not isinstance(replicas, int) or not 1 <= replicas <= MAX_REPLICAS:
        raise ValidationError({"replicas": [f"Give 1 to {MAX_REPLICAS} replicas."]})
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
    *, actor, deployment: Deployment, replicas: int | None = None, model_version: ModelVersion | None = None
) -> Deployment:
    """Change replicas, or replace the model in place (requests keep flowing: the old model
    serves until the new one is loaded)."""
    endpoint = deployment.endpoint
    require(actor, endpoint.workspace, Action.WRITE)
    replicas_changed = replicas is not None and replicas != deployment.replicas
    if replicas is not None:
        if not isinstance(replicas, int) or not 1 <= replicas <= MAX_REPLICAS:
            raise ValidationError({"replicas": [f"Give 1 to {MAX_REPLICAS} replicas."]})
        deployment.replicas = replicas
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
    """Give every ready deployment as many live replica nodes as its `replicas` (a lost one is
    replaced; fewer wanted, the surplus leaves) and stop the replicas of removed deployments. The
    local agent calls this every tick; its processes follow the nodes. Returns how many deployments
    changed. Two queries when nothing changes."""
    wanted = {
        pk: (target, replicas)
        for pk, target, replicas in Deployment.objects.filter(
            status=DeploymentStatus.READY, target__kind=TargetKind.INFERENCE
        ).values_list("pk", "target", "replicas")
    }
    live = dict(
        Node.objects.filter(deployment_id__isnull=False, status__in=NodeStatus.live())
        .values("deployment_id")
        .annotate(n=Count("pk"))
        .values_list("deployment_id", "n")
    )
    changed = 0
    for deployment_id, (target_id, replicas) in wanted.items():
        if live.get(deployment_id, 0) != replicas:
            target = ComputeTarget.objects.get(pk=target_id)
            replicas_scale(target=target, deployment_id=deployment_id, want=replicas)
            changed += 1
    if set(live) - set(wanted):
        changed += replica_nodes_orphaned(deployment_ids=set(wanted))
    return changed
