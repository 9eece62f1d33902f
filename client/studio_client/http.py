"""HTTP for the client: Bearer auth, the studio's error shape, bounded retries on 429/503 that
honour Retry-After, paginated lists as iterators, and streamed multipart uploads with a length."""

from __future__ import annotations

import email.utils
import os
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import requests

from . import __version__

RETRY_STATUSES = (429, 503)
MAX_ATTEMPTS = 5  # one try and four retries
MAX_RETRY_WAIT = 30.0  # seconds, for one wait (a longer Retry-After is cut to this)
MAX_TOTAL_WAIT = 120.0  # seconds, for all the waits of one call
CHUNK = 1024 * 1024


class StudioError(Exception):
    """The studio refused a request (or could not be reached).

    `status` is the HTTP status (0 when there was no answer), `code` the studio's machine-readable
    code (`not_found`, `invalid`, ...), `fields` maps a field at fault to its messages."""

    def __init__(self, message: str, *, status: int = 0, code: str = "error", fields: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.fields = fields or {}

    def __str__(self) -> str:
        text = self.message
        extra = [f"{name}: {'; '.join(map(str, msgs))}" for name, msgs in self.fields.items()]
        extra = [line for line in extra if line.split(": ", 1)[1] not in text]
        if extra:
            text += " (" + " | ".join(extra) + ")"
        return text

    def as_dict(self) -> dict:
        return {"error": {"status": self.status, "code": self.code, "message": self.message, "fields": self.fields}}


def _error_from(response: requests.Response) -> StudioError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        fields = error.get("fields") if isinstance(error.get("fields"), dict) else {}
        return StudioError(
            str(error.get("message") or response.reason),
            status=response.status_code,
            code=str(error.get("code") or "error"),
            fields={str(k): v if isinstance(v, list) else [v] for k, v in fields.items()},
        )
    text = (response.text or response.reason or "").strip()[:300]
    return StudioError(f"HTTP {response.status_code}: {text}", status=response.status_code)


def retry_after_seconds(value: str | None, default: float) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), bounded."""
    if value:
        value = value.strip()
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
                seconds = when.timestamp() - time.time()
            except (TypeError, ValueError, OverflowError):
                seconds = default
    else:
        seconds = default
    if seconds != seconds:  # NaN
        seconds = default
    return max(0.0, min(seconds, MAX_RETRY_WAIT))


class MultipartStream:
    """A multipart/form-data body read piece by piece (never whole in memory), with a known
    length so it is sent with Content-Length. `progress(sent, total)` is called as it is read."""

    def __init__(self, fields: dict[str, str], file_field: str, path: str, filename: str | None = None, progress=None):
        self.boundary = "studio-" + uuid.uuid4().hex
        self.path = path
        self.progress = progress
        filename = (filename or os.path.basename(path)).replace('"', "%22").replace("\r", "").replace("\n", "")
        head = b""
        for name, value in fields.items():
            head += (
                f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                + str(value).encode("utf-8")
                + b"\r\n"
            )
        head += (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self._head = head
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.file_size = os.path.getsize(path)
        self.length = len(head) + self.file_size + len(self._tail)
        self._parts: list = [head, None, self._tail]
        self._file = None
        self._sent = 0

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self.length

    def read(self, size: int = -1) -> bytes:
        size = CHUNK if size is None or size < 0 else size
        out = b""
        while self._parts and len(out) < size:
            part = self._parts[0]
            if part is None:
                if self._file is None:
                    self._file = open(self.path, "rb")  # noqa: SIM115 - closed when read to its end
                data = self._file.read(size - len(out))
                if not data:
                    self._file.close()
                    self._parts.pop(0)
                    continue
                out += data
            else:
                take = part[: size - len(out)]
                out += take
                rest = part[len(take) :]
                if rest:
                    self._parts[0] = rest
                else:
                    self._parts.pop(0)
        self._sent += len(out)
        if self.progress and out:
            self.progress(min(self._sent, self.length), self.length)
        return out

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()


class Transport:
    """One session to one studio: `request()` answers parsed JSON or raises StudioError."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 60.0, sleep: Callable = time.sleep):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"studio-client/{__version__}"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def absolute(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            # A page's `next` link as the server spelled it: only its path and query are kept, so
            # the token never goes to another host or over plain HTTP behind a TLS proxy.
            parts = urllib.parse.urlsplit(path)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            base = urllib.parse.urlsplit(self.url).path.rstrip("/")
            return self.url + (path[len(base) :] if base and path.startswith(base + "/") else path)
        if not path.startswith("/"):
            path = "/api/v1/" + path
        return self.url + path

    def send(self, method: str, path: str, *, body_factory: Callable | None = None, **kwargs) -> requests.Response:
        """The response of a request, retried on 429/503 as Retry-After says (bounded); raises
        StudioError for any other 4xx/5xx. `body_factory()` makes a fresh body for each attempt."""
        url = self.absolute(path)
        kwargs.setdefault("timeout", self.timeout)
        waited = 0.0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if body_factory is not None:
                body, headers = body_factory()
                kwargs["data"] = body
                kwargs["headers"] = {**kwargs.get("headers", {}), **headers}
            try:
                response = self.session.request(method, url, **kwargs)
            except requests.RequestException as exc:
                raise StudioError(f"Could not reach the studio at {self.url}: {exc}") from None
            finally:
                if body_factory is not None and hasattr(kwargs.get("data"), "close"):
                    kwargs["data"].close()
            if response.status_code in RETRY_STATUSES and attempt < MAX_ATTEMPTS:
                wait = retry_after_seconds(response.headers.get("Retry-After"), default=min(2.0**attempt, 8.0))
                if waited + wait <= MAX_TOTAL_WAIT:
                    response.close()
                    self.sleep(wait)
                    waited += wait
                    continue
            if response.status_code >= 400:
                raise _error_from(response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def request(self, method: str, path: str, **kwargs) -> Any:
        response = self.send(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise StudioError(
                f"The studio answered {method} {path} with something that is not JSON.", status=response.status_code
            ) from None

    def get(self, path: str, **params) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json if json is not None else {})

    def pages(self, path: str, page_size: int = 200, **params) -> Iterator[dict]:
        """Every item of a paginated list, fetched a page at a time as the iterator is read."""
        params = {k: v for k, v in params.items() if v is not None}
        url = self.absolute(path)
        query: dict | None = {**params, "page_size": page_size}
        while url:
            body = self.request("GET", url, params=query)
            if isinstance(body, list):  # an unpaginated list
                yield from body
                return
            yield from body.get("results", [])
            url, query = body.get("next"), None

    def download(self, path: str, destination: str, *, progress=None) -> int:
        """Streams a download to `destination` (written beside it, then renamed); returns its size."""
        response = self.send("GET", path, stream=True)
        total = int(response.headers.get("Content-Length") or 0)
        partial = destination + ".part"
        written = 0
        try:
            with open(partial, "wb") as fh:
                for chunk in response.iter_content(CHUNK):
                    fh.write(chunk)
                    written += len(chunk)
                    if progress:
                        progress(written, total)  # total 0: a size not known ahead (a CSV made as it is sent)
            if progress and not total:
                progress(written, written)  # the end, now that the size is known
            os.replace(partial, destination)
        finally:
            response.close()
            if os.path.exists(partial):
                os.unlink(partial)
        return written

    def upload(self, path: str, file_path: str, *, file_field: str = "file", fields=None, filename=None, progress=None):
        """POSTs a file as multipart/form-data, streamed from disk; answers the parsed JSON."""
        fields = {k: v for k, v in (fields or {}).items() if v is not None and v != ""}

        def body():
            stream = MultipartStream(fields, file_field, file_path, filename=filename, progress=progress)
            return stream, {"Content-Type": stream.content_type, "Content-Length": str(stream.length)}

        return self.request("POST", path, body_factory=body, timeout=max(self.timeout, 600))
