"""Code uploads admitted before a byte of the body is read, then streamed to staging (R9).

The same admission as data uploads (`data/uploads.py`: Content-Length, the storage quota, the
user's upload slots) with the code's own cap, STUDIO_CODE_MAX_BYTES, counted over every file of
the request while it streams: one archive in `file`, or a folder's files in `files` parts.

Django's multipart parser refuses a request with more than DATA_UPLOAD_MAX_NUMBER_FILES parts
(100) before any handler sees them; a bigger folder is sent as an archive (the studio's upload
box packs a dropped folder into a .tar in the browser for that reason).
"""

from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.http import UnreadablePostError
from django.http.multipartparser import MultiPartParserError

from data.services import upload_slot_release
from data.uploads import (
    MULTIPART_ALLOWANCE,
    StagedUpload,
    StagedUploadHandler,
    UploadRefused,
    upload_slot_admit,
)

FILE_FIELDS = frozenset({"file", "files"})
# Multipart framing per file part (its headers and boundary), beyond the bytes of the files.
PART_ALLOWANCE = 512


class _StagedCode(StagedUpload):
    """A staged part, already closed: Django closes every parsed file when a later part is refused."""

    def close(self):
        pass


class CodeUploadHandler(StagedUploadHandler):
    """Streams the `file` and `files` parts to staging, counting their bytes together."""

    field_names = FILE_FIELDS
    staged_class = _StagedCode
    hashed = False  # the snapshot hashes each file as it unpacks it

    def __init__(self, request=None, slot=None):
        super().__init__(request, max_bytes=settings.STUDIO_CODE_MAX_BYTES, slot=slot)
        self.total = 0

    def receive_data_chunk(self, raw_data, start):
        self.total += len(raw_data)
        if self.total > self.max_bytes:
            self._close()
            self.path.unlink(missing_ok=True)
            self._refuse()
        return super().receive_data_chunk(raw_data, start)


def too_large_message() -> str:
    limit = settings.STUDIO_CODE_MAX_BYTES
    return f"The code is larger than the limit of {limit / 2**20:.0f} MiB ({limit:,} bytes)."


@contextmanager
def code_upload_admitted(request, *, workspace):
    """Admit a code upload before its body is read (after authentication, CSRF on the header,
    membership and role), then let the caller parse it through the staging handler. Raises
    UploadRefused. Past the `with`, the slot is freed and every staged file removed."""
    slot = upload_slot_admit(
        request,
        workspace=workspace,
        max_bytes=settings.STUDIO_CODE_MAX_BYTES,
        framing=MULTIPART_ALLOWANCE + PART_ALLOWANCE * settings.DATA_UPLOAD_MAX_NUMBER_FILES,
        too_large=too_large_message(),
    )
    handler = CodeUploadHandler(request, slot=slot)
    request.upload_too_large = False
    request.upload_handlers = [handler]
    try:
        yield handler
    except TooManyFilesSent:
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        message = f"A folder upload carries at most {limit} files; send the folder as a .zip or .tar.gz instead."
        raise UploadRefused(message, status=413, code="too_many_files") from None
    except (TooManyFieldsSent, RequestDataTooBig):
        raise UploadRefused(
            "The form fields of the upload are too many or too large.", status=413, code="too_large"
        ) from None
    except (UnreadablePostError, MultiPartParserError, SuspiciousOperation):
        message = "The upload was cut off or malformed before the whole of it arrived; nothing was stored."
        raise UploadRefused(message, status=400, code="interrupted") from None
    finally:
        handler.discard_all()
        upload_slot_release(slot=slot)
