"""Services validate a row with the model's own rules (field validators, lengths, choices, `clean()`)
before they save it, through `model_validate`, so a rule is written once, on the model."""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, RegexValidator
from django.db.models import CharField, Model, TextField


def model_validate(instance: Model, *, fields: Iterable[str] | None = None) -> None:
    """`full_clean()` on `fields` (all by default); raises ValidationError keyed by field.

    Uniqueness is left to the services, which tell a conflict (409) from a bad value (400), and to
    the database."""
    exclude = None if fields is None else {f.name for f in instance._meta.fields} - set(fields)
    try:
        instance.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        # A rule and a length limit may say the same thing (a name rule covers its length): once.
        once = {field: list(dict.fromkeys(texts)) for field, texts in exc.message_dict.items()}
        raise ValidationError(once) from None


def description_field(**kwargs):
    """A free-text description of up to 2,000 characters. A TextField's max_length binds only its
    form, so the rule is a validator too: full_clean() refuses a longer one (never cut)."""
    return TextField(
        max_length=2000, blank=True, validators=[MaxLengthValidator(2000, "Use at most 2,000 characters.")], **kwargs
    )


def name_field(*, max_length: int, pattern: str, message: str, **kwargs):
    """A name column whose rule (a pattern that also bounds the length) says one message for every
    way a name can be wrong: empty, too long or badly formed."""
    return CharField(
        max_length=max_length,
        validators=[RegexValidator(pattern, message)],
        error_messages={"blank": message, "null": message, "max_length": message},
        **kwargs,
    )
