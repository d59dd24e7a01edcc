"""Server-wide bounds on what one client can make the page hold or fetch (Gradio 6.31 sets none of these).

- Request bodies: Gradio's routes read a multipart body whole (up to 1,000 files of `max_file_size` each) or a JSON
  body of any length, before any handler of the app can look at it. RequestBodyLimit refuses a body over
  MAX_REQUEST_BYTES (the largest upload, or an inline capture of it, with room to spare) with 413.
- URLs: a file input given `{"path": "https://..."}` makes Gradio download that URL into its cache, with no size or
  time limit, and the file then passes as an upload. The page never takes a URL, so `refuse_url_fetches` makes
  Gradio's download functions refuse.
- Sessions: Gradio keeps up to 10,000 sessions' state and every raw input value of each; SERVER_LIMITS keeps the
  most recent MAX_SESSIONS (an evicted visitor's next action starts a fresh session, see SessionBox) and runs at
  most MAX_THREADS handlers at once over all events and visitors (`server_limits`).
"""
from __future__ import annotations

from gradio import processing_utils
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

from biglearn.app.uploads import MAX_DATA_URL_CHARS

MAX_REQUEST_BYTES = MAX_DATA_URL_CHARS + 2**20
MAX_SESSIONS = 200
MAX_THREADS = 8
URL_REFUSED = "this server does not fetch files from URLs: upload the picture itself"


class RequestBodyLimit:
    """ASGI middleware: 413 for an HTTP request whose body is, or turns out to be, over `limit` bytes."""

    def __init__(self, app, limit: int = MAX_REQUEST_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            return await self.too_large(scope, receive, send)
        received, refused = 0, False

        async def counted_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:  # longer than it declared, or sent in chunks without a length: answer 413
                refused = True         # here, and the app reads no more and answers no one
                await self.too_large(scope, receive, send)
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        await self.app(scope, counted_receive, guarded_send)

    async def too_large(self, scope, receive, send) -> None:
        response = PlainTextResponse(f"request body over the {self.limit // 2**20} MB limit", status_code=413)
        await response(scope, receive, send)


def refuse_url_fetches() -> None:
    """Make Gradio's URL downloads (sync and async, used when it moves an input file into its cache) refuse."""

    def refuse(url, *args, **kwargs):
        raise ValueError(URL_REFUSED)

    async def refuse_async(url, *args, **kwargs):
        raise ValueError(URL_REFUSED)

    processing_utils.save_url_to_cache = refuse
    processing_utils.ssrf_protected_download = refuse
    processing_utils.async_ssrf_protected_download = refuse_async


def server_limits() -> dict:
    """launch() settings that bound the server as a whole (a new dict each time: launch() writes into app_kwargs)."""
    return dict(state_session_capacity=MAX_SESSIONS, max_threads=MAX_THREADS,
                app_kwargs={"middleware": [Middleware(RequestBodyLimit)]})
