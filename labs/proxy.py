"""The lab proxy: an asyncio process (aiohttp) between browsers and the instances' Jupyter servers.

It serves `/w/<workspace>/compute/<target>/lab/...` on its own origin (STUDIO_LAB_URL), so lab
traffic (long polls, WebSockets, big uploads) never takes the web server's threads, and notebook
HTML output cannot act on the studio's pages. Each request is authenticated by the studio's session
cookie, exactly as Django's get_user does it (session hash included), and answered 404 unless the
user owns the instance (labs.routes.lab_route). Upstream, the proxy speaks for the owner with the
lab's token; the token and the studio's cookies never cross the proxy in either direction.

Bodies are streamed both ways in chunks: an upload or a download is never whole in memory.
"""

import asyncio
import html
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import WSMsgType, web
from django.conf import settings
from django.contrib.auth import get_user
from django.db import close_old_connections
from django.http import Http404
from multidict import CIMultiDict

from .models import LabState
from .routes import LabRoute, lab_route

log = logging.getLogger("studio.labs.proxy")

LAB_PATH = r"/w/{workspace_id:[0-9]{1,18}}/compute/{target_id:[0-9]{1,18}}/lab{rest:(/.*)?}"
# RFC 9110 §7.6.1 hop-by-hop headers, plus those the proxy sets itself or must not pass on.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
# Upstream is loopback: compression there only costs CPU, and it would hide the token from the mask.
# Expect: the proxy has already told the browser to go on; the body is on its way.
NOT_UPSTREAM = HOP_BY_HOP | {"host", "authorization", "cookie", "origin", "referer", "accept-encoding", "expect"}
NOT_UPSTREAM_WS = NOT_UPSTREAM | {
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "sec-websocket-accept",
}
NOT_DOWNSTREAM = HOP_BY_HOP | {"set-cookie"}  # cookies: filtered one by one
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CHUNK_BYTES = 256 * 1024
WS_MAX_MESSAGE_BYTES = 32 * 2**20  # a big plot in a kernel message; several open tabs stay far below memory trouble
WS_HEARTBEAT_SECONDS = 30  # half-open WebSockets (a laptop closed) are noticed and closed
ROUTE_CACHE_MAX = 10_000


NOT_READY_SECONDS = 0.3  # how long "starting" is believed: the lab opens within this of being ready


@dataclass
class _CachedRoute:
    expires: float
    lookup: asyncio.Future  # -> LabRoute | None (None: 404)


class RouteCache:
    """Route look-ups (session → user → lab) for a few seconds, so a page that loads fifty files
    costs one look-up. A revoked session or a stopped lab stops working within `ttl` seconds.
    Concurrent misses for one key share one look-up."""

    def __init__(self, *, ttl: float, executor: ThreadPoolExecutor):
        self.ttl = ttl
        self.executor = executor
        self.entries: dict[tuple, _CachedRoute] = {}

    async def get(self, *, session_key: str, workspace_id: int, target_id: int) -> LabRoute | None:
        key = (session_key, workspace_id, target_id)
        now = time.monotonic()
        entry = self.entries.get(key)
        if entry is None or entry.expires < now:
            if len(self.entries) >= ROUTE_CACHE_MAX:
                self._sweep(now)
            loop = asyncio.get_running_loop()
            lookup = loop.run_in_executor(self.executor, _load_route, session_key, workspace_id, target_id)
            entry = self.entries[key] = _CachedRoute(now + self.ttl, asyncio.ensure_future(lookup))
        try:
            route = await asyncio.shield(entry.lookup)
        except Exception:
            self.entries.pop(key, None)  # a database hiccup is not cached
            raise
        if route is not None and route.state != LabState.READY:
            # A starting lab is polled by its owner's page: it opens the moment it is ready.
            entry.expires = min(entry.expires, now + NOT_READY_SECONDS)
        return route

    def forget(self, *, session_key: str, workspace_id: int, target_id: int) -> None:
        self.entries.pop((session_key, workspace_id, target_id), None)

    def _sweep(self, now: float) -> None:
        self.entries = {k: e for k, e in self.entries.items() if e.expires >= now}
        if len(self.entries) >= ROUTE_CACHE_MAX:
            self.entries.clear()


class _SessionRequest:
    """What django.contrib.auth.get_user reads from a request: its session."""

    def __init__(self, session):
        self.session = session


def _load_route(session_key: str, workspace_id: int, target_id: int) -> LabRoute | None:
    """In a worker thread (the ORM is synchronous): the session's user, then the lab's route."""
    from importlib import import_module

    close_old_connections()
    try:
        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        # Django's own check: the user exists, is active, and the session's password hash still
        # matches (a changed password or a sign-out everywhere ends the session here too).
        user = get_user(_SessionRequest(store))
        try:
            return lab_route(workspace_id=workspace_id, target_id=target_id, user=user)
        except Http404:
            return None
    finally:
        close_old_connections()


class TokenMask:
    """Replaces a secret in a byte stream cut into arbitrary chunks (the lab page carries Jupyter's
    token in its page config; a browser must never see it). The mask has the secret's length, so
    a Content-Length stays true; the browser's copy is useless, the proxy sends the real one."""

    def __init__(self, secret: str):
        self.secret = secret.encode()
        self.mask = b"0" * len(self.secret)
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self.pending + chunk if self.pending else chunk
        if self.secret in data:
            data = data.replace(self.secret, self.mask)
        # Hold back a tail that could be the start of the secret, completed by the next chunk.
        start = max(len(data) - len(self.secret) + 1, 0)
        cut = data.find(self.secret[:1], start)
        while cut != -1 and not self.secret.startswith(data[cut:]):
            cut = data.find(self.secret[:1], cut + 1)
        if cut == -1:
            self.pending = b""
            return data
        self.pending = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        rest, self.pending = self.pending, b""
        return rest

    def text(self, value: str) -> str:
        return value.replace(self.secret.decode(), self.mask.decode())


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


class LabProxy:
    def __init__(self, *, route_seconds: float | None = None):
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lab-route")
        ttl = settings.STUDIO_LAB_ROUTE_SECONDS if route_seconds is None else route_seconds
        self.routes = RouteCache(ttl=ttl, executor=self.executor)
        self.trusted_origins = {o for o in (_origin(settings.STUDIO_LAB_URL), _origin(settings.STUDIO_PUBLIC_URL)) if o}
        self.client: aiohttp.ClientSession | None = None

    async def start(self, app: web.Application) -> None:
        # One session for every upstream: keep-alive connections are reused across requests.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=256, keepalive_timeout=60, ttl_dns_cache=None)
        self.client = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def stop(self, app: web.Application) -> None:
        if self.client is not None:
            await self.client.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # --- the one handler -----------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        workspace_id = int(request.match_info["workspace_id"])
        target_id = int(request.match_info["target_id"])
        session_key = request.cookies.get(settings.SESSION_COOKIE_NAME, "")
        if not session_key or len(session_key) > 64 or not session_key.isalnum():
            return _not_found()
        route = await self.routes.get(session_key=session_key, workspace_id=workspace_id, target_id=target_id)
        if route is None:
            return _not_found()
        if not request.match_info["rest"]:  # .../lab → .../lab/, where Jupyter's base URL is
            raise web.HTTPFound(request.path + "/" + (f"?{request.query_string}" if request.query_string else ""))
        if not route.ready:
            return _state_page(route)
        if not self._origin_allowed(request):
            return web.Response(status=403, text="Cross-origin requests to a lab are refused.\n")
        try:
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await self._websocket(request, route)
            return await self._http(request, route)
        except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
            if not request.get("lab_prepared"):
                # The lab moved or died: look it up afresh next time.
                self.routes.forget(session_key=session_key, workspace_id=workspace_id, target_id=target_id)
                return _page(
                    502, "JupyterLab is not answering", "The lab of this instance did not answer; retry in a moment."
                )
            raise

    def _origin_allowed(self, request: web.Request) -> bool:
        """A WebSocket, or a request that changes something, must come from the lab's own pages (or
        the studio's): the proxy adds the owner's credentials upstream, so it must do Jupyter's own
        cross-site checks before it."""
        is_websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        if request.method in SAFE_METHODS and not is_websocket:
            return True
        origin = request.headers.get("Origin")
        if origin is None:
            # Browsers always send Origin on WebSockets and cross-origin writes; Fetch Metadata
            # covers the rest. A client with neither is not a browser page of another site.
            return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")
        own = f"{request.scheme}://{request.host}".lower()
        return origin.lower() in self.trusted_origins or origin.lower() == own

    def _upstream_headers(self, request: web.Request, route: LabRoute, *, websocket: bool) -> CIMultiDict:
        dropped = NOT_UPSTREAM_WS if websocket else NOT_UPSTREAM
        connection_named = {h.strip().lower() for h in request.headers.get("Connection", "").split(",")}
        headers = CIMultiDict(
            (name, value)
            for name, value in request.headers.items()
            if name.lower() not in dropped and name.lower() not in connection_named
        )
        headers["Host"] = route.address
        headers["Authorization"] = f"token {route.token}"
        if "Origin" in request.headers:
            headers["Origin"] = f"http://{route.address}"  # Jupyter's own check compares it with Host
        # The studio's cookies (its session above all) are not the lab's business.
        studio_cookies = {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME}
        lab_cookies = [
            pair
            for header in request.headers.getall("Cookie", ())
            for pair in (p.strip() for p in header.split(";"))
            if pair and pair.split("=", 1)[0].strip() not in studio_cookies
        ]
        if lab_cookies:
            headers["Cookie"] = "; ".join(lab_cookies)
        return headers

    @staticmethod
    def _upstream_url(request: web.Request, route: LabRoute, scheme: str = "http") -> str:
        query = request.query_string
        if "token" in request.query:
            # A token in the URL would win over the proxy's header in Jupyter's check.
            query = urlencode([(k, v) for k, v in request.query.items() if k != "token"])
        return f"{scheme}://{route.address}{request.raw_path.split('?', 1)[0]}" + (f"?{query}" if query else "")

    async def _http(self, request: web.Request, route: LabRoute) -> web.StreamResponse:
        body = request.content.iter_chunked(CHUNK_BYTES) if request.body_exists else None
        async with self.client.request(
            request.method,
            self._upstream_url(request, route),
            headers=self._upstream_headers(request, route, websocket=False),
            data=body,
            allow_redirects=False,
            compress=False,
        ) as upstream:
            mask = TokenMask(route.token)
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            connection_named = {h.strip().lower() for h in upstream.headers.get("Connection", "").split(",")}
            for name, value in upstream.headers.items():
                lowered = name.lower()
                if lowered in NOT_DOWNSTREAM or lowered in connection_named:
                    continue
                if lowered == "location":
                    value = _local_location(value, route)
                response.headers.add(name, mask.text(value))
            for cookie in upstream.headers.getall("Set-Cookie", ()):
                # Only Jupyter's XSRF cookie reaches the browser: cookies are shared across ports (a
                # lab must not set the studio's session), and Jupyter's login cookie would work
                # like its token (the proxy adds the token to every request anyway).
                if cookie.split("=", 1)[0].strip() == "_xsrf":
                    response.headers.add("Set-Cookie", mask.text(cookie))
            if upstream.content_length is not None and upstream.content_length <= CHUNK_BYTES:
                # Most answers (the API's, static files) are small: headers and body go in one write.
                body = await upstream.read()
                await response.prepare(request)
                await response.write_eof(mask.feed(body) + mask.flush())
                return response
            await response.prepare(request)
            request["lab_prepared"] = True  # past here an upstream error can only cut the body short
            async for chunk in upstream.content.iter_chunked(CHUNK_BYTES):
                await response.write(mask.feed(chunk))
            await response.write_eof(mask.flush())
            return response

    async def _websocket(self, request: web.Request, route: LabRoute) -> web.StreamResponse:
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        try:
            upstream = await self.client.ws_connect(
                self._upstream_url(request, route, scheme="ws"),
                headers=self._upstream_headers(request, route, websocket=True),
                protocols=offered,
                autoping=True,
                heartbeat=WS_HEARTBEAT_SECONDS,
                max_msg_size=WS_MAX_MESSAGE_BYTES,
                compress=0,
            )
        except aiohttp.WSServerHandshakeError as exc:
            return web.Response(
                status=exc.status if exc.status >= 400 else 502, text="The lab refused the WebSocket.\n"
            )
        mask = TokenMask(route.token)
        browser = web.WebSocketResponse(
            protocols=(upstream.protocol,) if upstream.protocol else (),
            autoping=True,
            heartbeat=WS_HEARTBEAT_SECONDS,
            max_msg_size=WS_MAX_MESSAGE_BYTES,
            compress=False,  # as Jupyter serves them: no per-message deflate on the proxy's CPU
        )
        try:
            await browser.prepare(request)
            request["lab_prepared"] = True
            await asyncio.gather(
                _pump(browser, upstream, mask=None),
                _pump(upstream, browser, mask=mask),
            )
        except (ConnectionError, aiohttp.ClientError):
            pass  # one side went away mid-message: both are closed below
        finally:
            await upstream.close()
            await browser.close()
        return browser


async def _pump(source, sink, *, mask: TokenMask | None) -> None:
    """Copy one direction of a WebSocket until the source closes; then close the sink with the
    source's close code (1005/1006 are not sendable: 1000 and 1011 stand in)."""
    async for message in source:
        if sink.closed:
            break
        if message.type == WSMsgType.TEXT:
            await sink.send_str(mask.text(message.data) if mask else message.data)
        elif message.type == WSMsgType.BINARY:
            data = message.data
            if mask and mask.secret in data:
                data = data.replace(mask.secret, mask.mask)
            await sink.send_bytes(data)
        elif message.type == WSMsgType.ERROR:
            break
    code = source.close_code
    if code is None or code in (1005, 1006):
        code = 1011 if source.exception() is not None else 1000
    if not sink.closed:
        await sink.close(code=code, message=b"")


def _local_location(value: str, route: LabRoute) -> str:
    """An absolute redirect to the upstream's own address becomes a path on the proxy."""
    for prefix in (f"http://{route.address}", f"https://{route.address}"):
        if value.startswith(prefix):
            return value[len(prefix) :] or "/"
    return value


def _not_found() -> web.Response:
    return _page(404, "Not found", "There is no lab here, or it is not yours.")


def _state_page(route: LabRoute) -> web.Response:
    """The owner's lab is not READY: a small page saying why (503 while starting, so retries work)."""
    title = {
        LabState.STARTING: "JupyterLab is starting…",
        LabState.STOPPED: "JupyterLab is stopped",
        LabState.FAILED: "JupyterLab failed to start",
    }.get(route.state, "JupyterLab is not ready")
    if route.state == LabState.READY:  # READY without an address or token: the lab is still writing them
        title = "JupyterLab is starting…"
    starting = route.state in (LabState.STARTING, LabState.READY)
    response = _page(
        503 if starting else 404,
        title,
        route.reason or "",
        subtitle=f"Compute instance {route.target_name}",
        refresh=5 if starting else None,
    )
    if starting:
        response.headers["Retry-After"] = "5"
    return response


def _page(status: int, title: str, text: str, *, subtitle: str = "", refresh: int | None = None) -> web.Response:
    refresh_tag = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    body = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{refresh_tag}'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family: system-ui, sans-serif; margin: 3rem auto; max-width: 40rem">'
        f"<h1>{html.escape(title)}</h1>"
        + (f"<p>{html.escape(subtitle)}</p>" if subtitle else "")
        + (f"<p>{html.escape(text)}</p>" if text else "")
        + "</body></html>"
    )
    response = web.Response(status=status, text=body, content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


def make_app(*, route_seconds: float | None = None) -> web.Application:
    proxy = LabProxy(route_seconds=route_seconds)
    app = web.Application(handler_args={"max_field_size": 65536})
    app.on_startup.append(proxy.start)
    app.on_cleanup.append(proxy.stop)
    app.router.add_route("*", LAB_PATH, proxy.handle)
    app["proxy"] = proxy
    return app
