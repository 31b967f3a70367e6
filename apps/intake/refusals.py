"""How intake answers its domain's refusals over HTTP: each to its status, code and headers.

quotas.py, idempotency.py and submission.py raise errors that say what happened in the
domain's words; only here do they become status codes.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from apps.intake.idempotency import InvalidKey, KeyBusy, KeyReused
from apps.intake.quotas import QuotaExceeded
from apps.intake.submission import BrokerUnavailable, NotAccepted
from jobrelay.errors import error_response

# Seconds a client waits before retrying: a store that failed once may answer the next try;
# a broker that is down is down for longer.
_RETRY_NOT_ACCEPTED = "1"
_RETRY_BROKER = "5"


async def _quota(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QuotaExceeded)
    headers = {"Retry-After": str(int(exc.retry_after))}
    if exc.rate is not None:
        headers |= exc.rate.headers()
    return error_response(429, exc.code, exc.message, headers)


async def _invalid_key(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidKey)
    return error_response(400, exc.code, str(exc))


async def _key_conflict(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KeyReused | KeyBusy)
    return error_response(409, exc.code, str(exc))


async def _not_accepted(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotAccepted)
    return error_response(503, exc.code, str(exc), {"Retry-After": _RETRY_NOT_ACCEPTED})


async def _broker(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BrokerUnavailable)
    return error_response(503, exc.code, str(exc), {"Retry-After": _RETRY_BROKER})


def install(app: FastAPI) -> None:
    app.add_exception_handler(QuotaExceeded, _quota)
    app.add_exception_handler(InvalidKey, _invalid_key)
    app.add_exception_handler(KeyReused, _key_conflict)
    app.add_exception_handler(KeyBusy, _key_conflict)
    app.add_exception_handler(NotAccepted, _not_accepted)
    app.add_exception_handler(BrokerUnavailable, _broker)
