"""Monitoring latency in fine buckets (sub-millisecond to seconds), old rows re-binned, and charts
that show the one minute that had traffic."""

import importlib
import json
import re

import pytest

from endpoints import selectors, serving
from endpoints import services as endpoint_services
from endpoints.models import MonitoringBucket

pytestmark = pytest.mark.django_db

rebin_migration = importlib.import_module("endpoints.migrations.0003_latency_fine_buckets")


@pytest.fixture
def endpoint(owner, workspace, model_version, inference):
    created = endpoint_services.endpoint_create(actor=owner, workspace=workspace, name="churn-api")
    for name in ("blue", "green"):
        endpoint_services.deployment_create(
            actor=owner, endpoint=created.endpoint, name=name, model_version=model_version, target=inference
        )
    created.endpoint.refresh_from_db()
    return created.endpoint


def _runtime(endpoint, name):
    serving.configs.clear()
    return serving.configs.get(endpoint.name).deployments[name]


@pytest.mark.parametrize("latency_ms", [0.07, 0.12, 0.9, 1.1, 2.2, 3.3, 11, 160, 2600, 41_000])
def test_a_request_is_reported_close_to_its_latency(endpoint, latency_ms):
    serving.monitor.record(
        endpoint_id=endpoint.pk, deployment=_runtime(endpoint, "blue"), status=200, latency_ms=latency_ms, rows=1
    )
    serving.monitor.flush()
    reported = selectors.monitoring(endpoint=endpoint).deployments["blue"].p(0.5)
    assert latency_ms <= reported <= latency_ms * 1.34, reported


def test_stored_histograms_of_the_coarse_layout_are_rebinned_without_changing_their_percentiles():
    old_edges = rebin_migration.OLD_EDGES
    assert rebin_migration.NEW_EDGES == serving.LATENCY_BUCKETS_MS
    old = [0] * (len(old_edges) + 1)
    old[2], old[9], old[13], old[-1] = 5, 3, 1, 1  # ≤2 ms, ≤30 ms, ≤150 ms, > 5 s
    new = rebin_migration.rebin(old)
    assert len(new) == len(serving.LATENCY_BUCKETS_MS) + 1 and sum(new) == sum(old)
    for q, expected in ((0.5, 2), (0.8, 30), (0.9, 150)):
        assert selectors.percentile_from_histogram(new, q) == expected
    assert selectors.percentile_from_histogram(new, 1.0) > 5000
    assert rebin_migration.rebin(new) is new  # already fine: left alone
    assert rebin_migration.coarsen(new) == old  # and back again


def test_the_migration_rebins_rows_already_stored(endpoint):
    old = [0] * (len(rebin_migration.OLD_EDGES) + 1)
    old[1] = 4  # four requests ≤ 1 ms
    bucket = MonitoringBucket.objects.create(
        endpoint=endpoint, deployment_name="blue", minute="2026-01-01T00:00Z", source="old", latency_histogram=old
    )
    from django.apps import apps

    rebin_migration.forwards(apps, None)
    bucket.refresh_from_db()
    assert len(bucket.latency_histogram) == len(serving.LATENCY_BUCKETS_MS) + 1
    assert selectors.percentile_from_histogram(bucket.latency_histogram, 0.5) == 1


def test_traffic_in_one_minute_draws_a_point_on_the_latency_and_request_charts(client, owner, workspace, endpoint):
    serving.monitor.record(
        endpoint_id=endpoint.pk, deployment=_runtime(endpoint, "blue"), status=200, latency_ms=1.7, rows=3
    )
    serving.monitor.flush()
    client.force_login(owner)
    page = client.get(f"/w/{workspace.pk}/endpoints/{endpoint.pk}/?tab=monitoring").content.decode()
    assert "≤2 ms" in page

    def chart(chart_id):
        found = re.search(rf'<script id="{chart_id}" type="application/json">(.*?)</script>', page, re.S)
        return json.loads(found.group(1))

    latency = chart("mon-latency")
    for trace in latency["data"]:
        points = [y for y in trace["y"] if y is not None]
        assert points == [2.0]
        assert "markers" in trace["mode"]  # a lone value drawn as a point, not an invisible line
    requests = chart("mon-requests")
    assert [sum(trace["y"]) for trace in requests["data"]] == [1]
