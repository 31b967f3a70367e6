"""One error shape for every API: `{"error": {"code": ..., "message": ...}}`.

Codes are stable strings clients may branch on; messages are for people and may change.
No handler answers a bare 500 with a traceback: unexpected exceptions are logged and answered
with `internal_error`, and a Dapr sidecar (or what is behind it) that is down with 503.
"""

from __future__ import annotations

import logging

import grpc
from dapr.clients.exceptions import DaprInternalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from jobrelay.constants import RETRY_AFTER_SECONDS
from jobrelay.contract.errors import ErrorBody, ErrorDetail

log = logging.getLogger(__name__)

# What a failed call to the sidecar raises: the async SDK wraps some calls' gRPC errors in
# DaprInternalError and raises others (DaprGrpcError, AioRpcError) as grpc.RpcError.
DAPR_ERRORS: tuple[type[Exception], ...] = (DaprInternalError, grpc.RpcError)


class ApiError(Exception):
    """An error answer; raise it from a handler or a dependency."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        if err.get("type") == "json_invalid":
            return f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})"
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


async def _on_api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "validation_error", _describe(exc))


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), headers)


async def _on_dapr_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("dapr call failed during %s %s: %s", request.method, request.url.path, exc)
    return error_response(
        503,
        "dependency_unavailable",
        "the job store or broker is not reachable right now; try again shortly",
        {"Retry-After": str(RETRY_AFTER_SECONDS * 5)},
    )


async def _on_too_deep(request: Request, exc: Exception) -> JSONResponse:
    # Only a request nested past Python's recursion limit gets here (the submit checks bound
    # what they parse, jobrelay.extract_schema): it is the client's input, never a 500.
    log.warning("request nested too deeply during %s %s", request.method, request.url.path)
    return error_response(422, "validation_error", "the request is nested too deeply")


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error during %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred; it was logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    for dapr_error in DAPR_ERRORS:
        app.add_exception_handler(dapr_error, _on_dapr_error)
    app.add_exception_handler(RecursionError, _on_too_deep)
    app.add_exception_handler(Exception, _on_unexpected)
