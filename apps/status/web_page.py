"""The web page: submit a job and watch it, served by status under /ui/ (no build step).

Served here, not by an app of its own, so the page and the status API share an origin: the
page reads job states and event streams with no CORS at all. Submissions go to intake, a
second origin; intake admits exactly this app's origin (its `cors_origins` setting defaults
to the origin of `status_base_url`). A same-origin submit route in status was the other
choice, but it would make status forward uploads to intake, a hop and a coupling the rest of
jobrelay avoids: services talk only through Dapr pub/sub and state.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from apps.status.deps import SettingsDep

PAGE_DIR = Path(__file__).with_name("web")

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/ui/config.json")
async def page_config(settings: SettingsDep) -> dict[str, str]:
    """Where the page sends jobs; the page lets a person point it elsewhere."""
    return {"intake_url": settings.intake_public_url}


def mount_page(app: FastAPI) -> None:
    # The config route first: a mount answers everything under its prefix.
    app.include_router(router)
    app.mount("/ui", StaticFiles(directory=PAGE_DIR, html=True), name="ui")
