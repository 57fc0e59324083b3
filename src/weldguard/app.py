"""The ASGI application: create_app() and its lifespan (engines are built there,
never at import time)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from weldguard.config import Settings, get_settings
from weldguard.db import make_engine, make_session_factory
from weldguard.deps import AppState
from weldguard.errors import AuthenticationFailed, DomainError, ErrorDetail
from weldguard.process import freeze_startup_objects
from weldguard.welder.identity import IdentityVault

log = logging.getLogger(__name__)

HTTP_MESSAGES = {
    401: "请先登录",
    403: "无权访问",
    404: "找不到该页面或记录",
    405: "不支持的请求方法",
}


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api") or "application/json" in request.headers.get(
        "accept", ""
    )


def _error_response(request: Request, status: int, body: dict[str, Any]) -> Response:
    if _wants_json(request):
        return JSONResponse(body, status_code=status)
    from weldguard.web.errors import render_error

    return render_error(request, status, body)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.resolved_database_url())
        session_factory = make_session_factory(engine)
        app.state.weldguard = AppState(
            settings=settings,
            session_factory=session_factory,
            vault=IdentityVault(settings.resolved_secret_key()),
        )
        # The unlock fast path: the one `serve` started in this process, else our own.
        from weldguard.unlock.command_bus import running_command_bus, start_command_bus

        own_bus = None
        bus = running_command_bus()
        if bus is None and settings.unlock_command_bus:
            bus = own_bus = await start_command_bus(settings, session_factory, wait_s=2.0)
        app.state.weldguard.command_bus = bus
        if settings.gc_freeze:
            freeze_startup_objects()
        try:
            yield
        finally:
            if own_bus is not None:
                await own_bus.stop()
            engine.dispose()

    app = FastAPI(
        title="weldguard API",
        version="1",
        description="电气焊安全监管数字化平台 API. Errors share one format: "
        '`{"error": {"code", "message", "details": [{"field"|"row"|"column", "reason"}]}}`.',
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url=None,  # served below from node_modules: no CDN on a closed network
        redoc_url=None,
    )

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        if isinstance(exc, AuthenticationFailed) and not _wants_json(request):
            from weldguard.web.errors import redirect_to_login

            return redirect_to_login(request)
        return _error_response(request, exc.status_code, exc.as_dict())

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        details = [
            ErrorDetail(
                reason=str(e.get("msg", "")),
                field=".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query")),
            )
            for e in exc.errors()
        ]
        body = DomainError("请求参数有误", details).as_dict()
        body["error"]["code"] = "invalid_input"
        return _error_response(request, 422, body)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = HTTP_MESSAGES.get(exc.status_code, str(exc.detail))
        body = {"error": {"code": f"http_{exc.status_code}", "message": message}}
        return _error_response(request, exc.status_code, body)

    @app.get("/api/docs", include_in_schema=False)
    async def api_docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title="weldguard API",
            swagger_js_url="/vendor/swagger-ui-dist/swagger-ui-bundle.js",
            swagger_css_url="/vendor/swagger-ui-dist/swagger-ui.css",
            swagger_favicon_url="/vendor/swagger-ui-dist/favicon-32x32.png",
        )

    from weldguard.api import router as api_router
    from weldguard.web import mount as mount_web
    from weldguard.web.pages_scan import router as scan_router

    # The scan page first: FastAPI tries the routes in order, walking every
    # included router, and reaching it behind the API's took ~0.5 ms per request
    # (twice: once to match, once to handle). 扫码开机 is the path with a latency
    # target; no other route shares its paths.
    app.include_router(scan_router)
    app.include_router(api_router, prefix="/api/v1")
    mount_web(app, settings)
    return app
