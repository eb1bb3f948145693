"""The pages the server serves itself, every asset from the installed packages (no CDN, so
they work on an offline cluster): the dashboard at /ui and the API's docs at /docs.

The dashboard's files (service/dashboard/) hold no data: the page reads the /v1 API from
the browser with the token the user gives it (kept in the tab's sessionStorage, sent in the
Authorization header, never in a URL), so the API's tokens and roles apply unchanged."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard"
SWAGGER_UI = Path(str(files("fastapi_offline") / "static"))  # Swagger UI 5, vendored there
# The dashboard loads only its own files and talks only to this server.
DASHBOARD_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/ui")
def dashboard() -> FileResponse:
    return FileResponse(DASHBOARD / "index.html", headers=DASHBOARD_HEADERS)


@router.get("/docs")
def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Rung API",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon.png",
    )


def install(app: FastAPI) -> None:
    """The two pages and their files."""
    app.include_router(router)
    app.mount("/ui/assets", StaticFiles(directory=DASHBOARD), name="dashboard")
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_UI), name="swagger-ui")
