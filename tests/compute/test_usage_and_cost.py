"""Usage and cost: inference clusters are metered by replica-hours, and the month's table adds up."""

import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from compute.models import Node, NodeSession, NodeStatus, ServingSession, TargetKind
from compute.selectors import usage
from compute.services import target_create
from endpoints import services as endpoint_services
from tests.endpoints.conftest import register

pytestmark = pytest.mark.django_db


@pytest.fixture
def serving_cluster(owner, workspace):
    return target_create(
        actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving", size="medium"
    ).target


def _at(day: int, hour: int) -> datetime:
    return datetime(2026, 6, day, hour, tzinfo=timezone.get_current_timezone())


def test_deployments_are_metered_by_replica_hours_at_the_inference_clusters_price(owner, workspace, serving_cluster):
    version = register(workspace, owner)
    endpoint = endpoint_services.endpoint_create(actor=owner, workspace=workspace, name="churn-api").endpoint
    deployment = endpoint_services.deployment_create(
        actor=owner, endpoint=endpoint, name="blue", model_version=version, target=serving_cluster, replicas=2
    )
    ServingSession.objects.filter(deployment_id=deployment.pk).update(started_at=_at(10, 9))
    # Three hours at 2 replicas, then 4 replicas until removed an hour later.
    endpoint_services.deployment_update(actor=owner, deployment=deployment, replicas=4)
    ServingSession.objects.filter(deployment_id=deployment.pk, replicas=2).update(ended_at=_at(10, 12))
    ServingSession.objects.filter(deployment_id=deployment.pk, replicas=4).update(started_at=_at(10, 12))
    deployment_id = deployment.pk
    endpoint_services.deployment_delete(actor=owner, deployment=deployment)
    ServingSession.objects.filter(deployment_id=deployment_id, replicas=4).update(ended_at=_at(10, 13))
    assert not ServingSession.objects.filter(ended_at__isnull=True).exists()

    data = usage(workspace=workspace, days=30, now=_at(20, 0))
    price = serving_cluster.price_per_node_hour
    assert data.month_hours["serving"] == Decimal("10.000")  # 3 h × 2 + 1 h × 4
    assert data.month_cost["serving"] == (10 * price).quantize(Decimal("0.01"))
    assert data.kinds["serving"] == "Inference cluster"
    assert sum(data.hours["serving"]) == pytest.approx(10.0)
    assert sum(data.cost["serving"]) == pytest.approx(float(10 * price))


def test_deleting_an_endpoint_stops_metering_its_deployments(owner, workspace, serving_cluster):
    version = register(workspace, owner)
    endpoint = endpoint_services.endpoint_create(actor=owner, workspace=workspace, name="churn-api").endpoint
    endpoint_services.deployment_create(
        actor=owner, endpoint=endpoint, name="blue", model_version=version, target=serving_cluster
    )
    endpoint_services.endpoint_delete(actor=owner, endpoint=endpoint)
    assert ServingSession.objects.get().ended_at is not None


def test_the_months_table_adds_up_to_its_total(client, api, owner, workspace, serving_cluster):
    now = timezone.now()
    month_start = timezone.localtime(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = max(month_start, now - timedelta(minutes=5))  # within this month whenever the test runs
    for name in ("cpu-a", "cpu-b", "cpu-c"):  # each about $0.004: shown as $0.00, three of them once added $0.01
        target = target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name=name).target
        node = Node.objects.create(target=target, status=NodeStatus.STOPPED)
        NodeSession.objects.create(
            node=node, target=target, workspace=workspace, started_at=start, ended_at=now, price_per_hour="0.05"
        )
    ServingSession.objects.create(
        target=serving_cluster,
        workspace=workspace,
        deployment_id=1,
        deployment_name="churn-api/blue",
        replicas=3,
        started_at=start,
        ended_at=now,
        price_per_hour="0.0333",
    )
    client.force_login(owner)
    page = client.get(f"/w/{workspace.pk}/compute/usage/").content.decode()
    rows = re.findall(
        r'<tr data-testid="usage-row"><td>(.*?)</td><td class="small">(.*?)</td>'
        r'<td class="num">([\d.,]+)</td><td class="num">\$([\d.,]+)</td></tr>',
        page,
    )
    assert [(name, kind) for name, kind, _, _ in rows] == [
        ("cpu-a", "Compute cluster"),
        ("cpu-b", "Compute cluster"),
        ("cpu-c", "Compute cluster"),
        ("serving", "Inference cluster"),
    ]
    total = re.search(
        r'<tr data-testid="usage-total"><th>Total</th><td></td><td class="num">([\d.,]+)</td>'
        r'<td class="num">\$([\d.,]+)</td></tr>',
        page,
    )
    assert sum(Decimal(hours) for _, _, hours, _ in rows) == Decimal(total.group(1))
    assert sum(Decimal(cost) for _, _, _, cost in rows) == Decimal(total.group(2))
    assert re.search(rf'data-testid="month-cost">\${re.escape(total.group(2))}<', page)

    body = api(owner).get(f"/api/v1/workspaces/{workspace.pk}/compute/usage/").json()
    assert Decimal(body["month_cost"]) == sum(Decimal(row["month_cost"]) for row in body["targets"])
    assert "serving" in {row["target"] for row in body["targets"]}
