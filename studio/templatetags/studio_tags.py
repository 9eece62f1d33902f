"""Small template filters every page may use (installed as builtins)."""

from django import template

register = template.Library()


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
