"""HTTP plumbing of the server: JSON errors of one sentence (never a traceback) and the token / origin gate."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from typing import NoReturn
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from worldsmith.errors import WorldsmithError
from worldsmith.serve import guard
from worldsmith.serve.jobs import Busy

log = logging.getLogger("worldsmith.serve")
OPEN_PATHS = ("/", "/play", "/gallery", "/docs", "/openapi.json")  # pages and docs: no data


def fail(status: int, message: str, headers: dict[str, str] | None = None) -> NoReturn:
    raise HTTPException(status_code=status, detail=message, headers=headers)


def error_json(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _sentence(exc: RequestValidationError) -> str:
    """One sentence for pydantic's list of validation errors (the first one)."""
    errors = exc.errors()
    if not errors:
        return "the request is invalid; see /docs for its fields."
    e = errors[0]
    loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
    if e.get("type") == "json_invalid":
        return "the request body is not valid JSON; send a JSON object (see /docs)."
    if e.get("type") == "extra_forbidden":
        return f"unknown field {loc!r}; see /docs for the fields this endpoint takes."
    if e.get("type") == "missing":
        return f"the field {loc!r} is missing; see /docs for the fields this endpoint takes."
    msg = str(e.get("msg", "is invalid")).rstrip(".")
    msg = msg[0].lower() + msg[1:]
    return f"{loc or 'the request'}: {msg}." if loc else f"the request body is invalid: {msg}."


class Gate:
    """ASGI middleware: with a token, every API request and websocket must carry it (``Authorization: Bearer T``,
    ``X-Worldsmith-Token: T`` or ``?token=T``); a websocket from a page of another origin is refused (browsers do
    not apply CORS to websockets)."""

    def __init__(self, app, token: str | None, origins: Sequence[str]) -> None:
        self.app, self.token, self.origins = app, token, set(origins)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        if scope["type"] == "websocket" and not self._same_origin(headers):
            return await send({"type": "websocket.close", "code": 1008, "reason": "cross-origin websocket refused"})
        if self.token and not (path in OPEN_PATHS or path.startswith("/static/")) and not self._authorized(scope, headers):
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008, "reason": "missing or wrong token"})
            message = ("this server requires a token: send the header 'Authorization: Bearer TOKEN' (or add "
                       "?token=TOKEN to the URL).")  # fmt: skip
            return await error_json(401, message, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
        return await self.app(scope, receive, send)

    def _authorized(self, scope, headers: dict[str, str]) -> bool:
        supplied = headers.get("x-worldsmith-token", "")
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            supplied = auth[7:].strip()
        if not supplied:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            supplied = (query.get("token") or [""])[0]
        return hmac.compare_digest(supplied.encode(), self.token.encode())

    def _same_origin(self, headers: dict[str, str]) -> bool:
        origin = headers.get("origin")
        if origin is None:  # not a browser: the token (when set) decides
            return True
        return urlsplit(origin).netloc == headers.get("host") or origin in self.origins


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app returns is ``{"error": one sentence}`` with its status."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "the request failed."
        if exc.status_code == 404 and message == "Not Found":
            message = f"there is nothing at {request.url.path}; see /docs for the endpoints."
        if exc.status_code == 405 and message == "Method Not Allowed":
            message = f"{request.method} is not allowed on {request.url.path}; see /docs."
        return error_json(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_json(422, _sentence(exc))

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        return error_json(429, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(guard.Blocked)
    async def blocked(request: Request, exc: guard.Blocked) -> JSONResponse:
        return error_json(422, str(exc))

    @app.exception_handler(WorldsmithError)
    async def user_error(request: Request, exc: WorldsmithError) -> JSONResponse:
        return error_json(400, str(exc))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_json(500, "the server hit an internal error; its log has the details.")

