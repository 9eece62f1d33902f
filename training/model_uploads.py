"""Model files uploaded to register, admitted before a byte of the body is read (R9).

The data uploads' admission (`data/uploads.py`: Content-Length, the storage quota, the user's
upload slots) with the model's own cap, STUDIO_MODEL_UPLOAD_MAX_BYTES, counted on the bytes of the
`file` part while it streams to staging.
"""

from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.http import UnreadablePostError
from django.http.multipartparser import MultiPartParserError

from data.services import upload_slot_release
from data.uploads import MULTIPART_ALLOWANCE, StagedUploadHandler, UploadRefused, upload_slot_admit


def too_large_message() -> str:
    limit = settings.STUDIO_MODEL_UPLOAD_MAX_BYTES
    return f"The model file is larger than the limit of {limit / 2**20:.0f} MiB ({limit:,} bytes)."


@contextmanager
def model_upload_admitted(request, *, workspace):
    """Admit a model upload (after authentication, CSRF on the header, membership and role), then
    let the caller parse it through the staging handler. Raises UploadRefused. Past the `with`, the
    slot is freed and the staged file removed."""
    slot = upload_slot_admit(
        request,
        workspace=workspace,
        max_bytes=settings.STUDIO_MODEL_UPLOAD_MAX_BYTES,
        framing=MULTIPART_ALLOWANCE,
        too_large=too_large_message(),
    )
    handler = StagedUploadHandler(request, max_bytes=settings.STUDIO_MODEL_UPLOAD_MAX_BYTES, slot=slot)
    request.upload_too_large = False
    request.upload_handlers = [handler]
    try:
        yield handler
    except (TooManyFieldsSent, RequestDataTooBig, TooManyFilesSent):
        raise UploadRefused(
            "The form fields of the upload are too many or too large.", status=413, code="too_large"
        ) from None
    except (UnreadablePostError, MultiPartParserError, SuspiciousOperation):
        message = "The upload was cut off or malformed before the whole of it arrived; nothing was stored."
        raise UploadRefused(message, status=400, code="interrupted") from None
    finally:
        handler.discard_all()
        upload_slot_release(slot=slot)
