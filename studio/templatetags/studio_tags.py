"""Small template filters every page may use (installed as builtins)."""

import datetime as dt
import math

from django import template

register = template.Library()


@register.filter
def pairs(mapping):
    """`{% for key, value in mapping|pairs %}`: a dict's items. `mapping.items` in a template looks
    up the key "items" first, so a column or metric named items, keys or values broke the page."""
    return list(mapping.items()) if mapping else []


@register.filter
def get_item(mapping, key):
    """mapping[key], or None (dicts with keys that are not identifiers)."""
    if mapping is None:
        return None
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def split(value: str, separator: str = " "):
    return str(value).split(separator)


@register.filter
def percentile(stats, q):
    """stats.p(q) for monitoring stats (templates cannot call with arguments)."""
    return stats.p(float(q))


@register.filter
def percent(value, digits: int = 1):
    """0.0123 → '1.2%'."""
    try:
        return f"{float(value) * 100:.{int(digits)}f}%"
    except (TypeError, ValueError, OverflowError):
        return ""


@register.filter
def for_people(value, semantic_type: str = ""):
    """A profile statistic as people read it: numbers to 4 significant digits (thousands separated,
    no float noise such as 69.30000000000001), dates as dates (a time only when there is one)."""
    if value is None or value == "":
        return ""
    if semantic_type == "datetime" or isinstance(value, str):
        return _date_for_people(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 10_000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _date_for_people(value) -> str:
    try:
        stamp = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    stamp = (stamp + dt.timedelta(microseconds=500_000)).replace(microsecond=0)  # to the nearest second
    if stamp.time() == dt.time(0):
        text = stamp.date().isoformat()
    else:
        text = stamp.strftime("%Y-%m-%d %H:%M" if stamp.second == 0 else "%Y-%m-%d %H:%M:%S")
    if stamp.tzinfo is not None:
        offset = stamp.utcoffset()
        text += " UTC" if not offset else stamp.strftime(" %z")
    return text


_DURATION_UNITS = (("years", 365.25 * 86_400), ("days", 86_400), ("hours", 3_600), ("min", 60), ("s", 1))


@register.filter
def duration(seconds):
    """Seconds as a duration with 3 significant digits: 36_000_000 → '417 days', 90 → '1.5 min'."""
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(seconds):
        return ""
    for unit, size in _DURATION_UNITS:
        if abs(seconds) >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds * 1000:.3g} ms" if seconds else "0 s"
