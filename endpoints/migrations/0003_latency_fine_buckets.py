"""Re-bin stored latency histograms from the first, coarse bucket layout (20 counts) to the fine one
(63 counts). Every old edge is also a new edge, so each old count moves to the new bucket with the
same upper edge and every percentile read from old rows stays what it was; the old overflow bucket
(> 5 s) goes to the first new bucket above 5 s. The layouts are written out here, not imported:
a migration must not change when the code does."""

import bisect

from django.db import migrations

OLD_EDGES = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000)
_PER_DECADE = ("1", "1.2", "1.5", "2", "2.5", "3", "4", "5", "6", "7.5")
NEW_EDGES = (0.05, 0.06, 0.075) + tuple(
    edge for exponent in range(-1, 5) for m in _PER_DECADE if (edge := float(f"{m}e{exponent}")) <= 60_000
)


def rebin(histogram: list) -> list:
    """An old-layout histogram as a new-layout one (a new-layout one is returned unchanged)."""
    if len(histogram) != len(OLD_EDGES) + 1:
        return histogram
    out = [0] * (len(NEW_EDGES) + 1)
    for index, count in enumerate(histogram):
        if index < len(OLD_EDGES):
            out[bisect.bisect_left(NEW_EDGES, OLD_EDGES[index])] += count
        else:
            out[bisect.bisect_right(NEW_EDGES, OLD_EDGES[-1])] += count
    return out


def coarsen(histogram: list) -> list:
    """A new-layout histogram in the old layout (each count to the old bucket that holds it)."""
    if len(histogram) != len(NEW_EDGES) + 1:
        return histogram
    out = [0] * (len(OLD_EDGES) + 1)
    for index, count in enumerate(histogram):
        edge = NEW_EDGES[index] if index < len(NEW_EDGES) else float("inf")
        out[bisect.bisect_left(OLD_EDGES, edge)] += count
    return out


def _convert(apps, function, size: int) -> None:
    MonitoringBucket = apps.get_model("endpoints", "MonitoringBucket")
    batch = []
    for bucket in MonitoringBucket.objects.only("pk", "latency_histogram").iterator(chunk_size=2000):
        if len(bucket.latency_histogram or []) == size:
            bucket.latency_histogram = function(bucket.latency_histogram)
            batch.append(bucket)
        if len(batch) >= 2000:
            MonitoringBucket.objects.bulk_update(batch, ["latency_histogram"])
            batch = []
    if batch:
        MonitoringBucket.objects.bulk_update(batch, ["latency_histogram"])


def forwards(apps, schema_editor):
    _convert(apps, rebin, len(OLD_EDGES) + 1)


def backwards(apps, schema_editor):
    _convert(apps, coarsen, len(NEW_EDGES) + 1)


class Migration(migrations.Migration):
    dependencies = [("endpoints", "0002_initial")]

    operations = [migrations.RunPython(forwards, backwards, elidable=True)]
