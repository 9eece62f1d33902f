"""One set of monitoring counters (serving.RequestCounts): counted by the buffer, written by the
flush, added up by the monitoring selector, under the names of MonitoringBucket's columns."""

from dataclasses import fields

import pytest

from endpoints import selectors, services
from endpoints.models import MonitoringBucket
from endpoints.serving import MonitorBuffer, RequestCounts

pytestmark = pytest.mark.django_db


def test_every_counter_is_a_column_of_the_bucket():
    columns = {f.name for f in MonitoringBucket._meta.get_fields()}
    assert {f.name for f in fields(RequestCounts)} <= columns


def test_counts_recorded_flushed_and_read_back_agree(owner, workspace, settings):
    settings.STUDIO_MONITOR_FLUSH_SECONDS = 0  # flushed by hand
    endpoint = services.endpoint_create(actor=owner, workspace=workspace, name="churn-api").endpoint
    buffer = MonitorBuffer()
    for status, rows in ((200, 3), (200, 2), (400, 0), (429, 0), (500, 0)):
        buffer.record(endpoint_id=endpoint.pk, deployment=None, status=status, latency_ms=2.0, rows=rows)
    assert buffer.flush() == 1
    stats = selectors.monitoring(endpoint=endpoint).deployments["(no deployment)"]
    assert stats.counter_values() == {
        "requests": 5,
        "errors_4xx": 1,
        "errors_5xx": 1,
        "throttled": 1,
        "rows": 5,
        "latency_ms_sum": 10.0,
    }


def test_a_buffer_names_its_host_by_the_studio_hostname(settings):
    settings.STUDIO_HOSTNAME = "host-b"  # several hosts of one machine (or containers) keep apart
    assert MonitorBuffer().source.startswith("host-b:")
