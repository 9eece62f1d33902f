"""Page middleware: object storage that is down is a 503 page that says so, not a server error."""

from django.template.response import TemplateResponse

from studio.api.errors import STORAGE_RETRY_AFTER, is_storage_error


class StorageUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_storage_error(exception):
            return None
        response = TemplateResponse(request, "503.html", {"reason": str(exception)}, status=503)
        response["Retry-After"] = str(STORAGE_RETRY_AFTER)
        return response.render()
