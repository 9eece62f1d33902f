from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination

from studio.ids import MAX_ID_DIGITS


class StudioPagination(PageNumberPagination):
    """`?page=` and `?page_size=` as the schema says: one whole number each, in range, or a 400.

    DRF falls back to the default for a page size it cannot read (and clamps one too large),
    so `?page_size=abc` would quietly answer 50 rows: the caller should learn the request was wrong.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    last_page_strings = ()  # `?page=last` is not a whole number

    def get_page_size(self, request):
        return _query_int(request, self.page_size_query_param, maximum=self.max_page_size) or self.page_size

    def get_page_number(self, request, paginator):
        return _query_int(request, self.page_query_param, maximum=10**MAX_ID_DIGITS - 1) or 1

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        limits = {self.page_query_param: 10**MAX_ID_DIGITS - 1, self.page_size_query_param: self.max_page_size}
        for parameter in parameters:
            parameter["schema"].update(minimum=1, maximum=limits[parameter["name"]])
        return parameters


def _query_int(request, name: str, *, maximum: int) -> int | None:
    values = request.query_params.getlist(name)
    if not values:
        return None
    text = values[0]
    digits = text.isascii() and text.isdigit() and len(text) <= len(str(maximum))
    if len(values) > 1 or not digits or not 1 <= int(text) <= maximum:
        raise ValidationError({name: [f"Give one whole number from 1 to {maximum}."]})
    return int(text)
