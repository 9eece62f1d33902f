"""Services validate a row with the model's own rules (field validators, lengths, choices, `clean()`)
before they save it, through `model_validate`, so a rule is written once, on the model."""

from collections.abc import Iterable

from django.db.models import Model


def model_validate(instance: Model, *, fields: Iterable[str] | None = None) -> None:
    """`full_clean()` on `fields` (all by default); raises ValidationError keyed by field.

    Uniqueness is left to the services, which tell a conflict (409) from a bad value (400), and to
    the database."""
    exclude = None if fields is None else {f.name for f in instance._meta.fields} - set(fields)
    instance.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
