"""Meter the deployments that exist already: each serves its replicas since it was created (the
price per replica-hour is its inference cluster's price per node-hour, as written here)."""

from decimal import Decimal

from django.db import migrations

PRICE_PER_HOUR = {"small": "0.05", "medium": "0.19", "large": "0.38", "xlarge": "0.76"}
LOW_PRIORITY_DISCOUNT = Decimal("0.2")


def forwards(apps, schema_editor):
    Deployment = apps.get_model("endpoints", "Deployment")
    ServingSession = apps.get_model("compute", "ServingSession")
    metered = set(ServingSession.objects.values_list("deployment_id", flat=True))
    sessions = []
    for deployment in Deployment.objects.select_related("endpoint", "target"):
        if deployment.pk in metered:
            continue
        target = deployment.target
        price = Decimal(PRICE_PER_HOUR.get(target.size, PRICE_PER_HOUR["small"]))
        if target.priority == "low":
            price *= LOW_PRIORITY_DISCOUNT
        sessions.append(
            ServingSession(
                target=target,
                workspace_id=deployment.endpoint.workspace_id,
                deployment_id=deployment.pk,
                deployment_name=f"{deployment.endpoint.name}/{deployment.name}"[:130],
                replicas=deployment.replicas,
                started_at=deployment.created_at,
                price_per_hour=price,
            )
        )
    ServingSession.objects.bulk_create(sessions)


class Migration(migrations.Migration):
    dependencies = [("endpoints", "0003_latency_fine_buckets"), ("compute", "0003_serving_session")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=True)]
