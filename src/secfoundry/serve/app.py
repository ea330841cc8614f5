"""``create_app(config)``: the FastAPI application (API + web UI + local static files).

    from secfoundry.serve import ServeConfig, create_app
    app = create_app(ServeConfig(kb_path="...", home="..."))   # then uvicorn.run(app) or TestClient(app)

Nothing heavy is imported here: the KB, embedders, models and app engines load on first use.
"""

from __future__ import annotations

import importlib
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from secfoundry import __version__
from secfoundry.serve import api_jobs, api_kb, api_system, ui
from secfoundry.serve.config import ServeConfig
from secfoundry.serve.jobs import JobKind
from secfoundry.serve.security import Guard, LoginRequired
from secfoundry.serve.state import Service

# Endpoint groups for the applications, one module each; a group whose app is not installed (or
# not importable) is reported in /readyz and gets no routes.
APP_GROUPS = ("secfoundry.serve.app_intel", "secfoundry.serve.app_soc", "secfoundry.serve.app_review")

DESCRIPTION = """The analyst service of secfoundry: the knowledge base and the intel / SOC / review
applications over HTTP. Send `Authorization: Bearer KEY` (keys: `secfoundry serve keys add NAME`).
Long work runs as a job: `POST /jobs/{kind}` -> `GET /jobs/{id}` -> `GET /jobs/{id}/result`."""


def create_app(config: ServeConfig | None = None, service: Service | None = None) -> FastAPI:
    config = config or ServeConfig.from_env()
    owned = service is None  # a service handed in is closed by whoever made it (server.run)
    svc = service or Service(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc.jobs.recover()
        yield
        if owned:
            svc.close()

    app = FastAPI(title="secfoundry", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # /docs is served by api_system with local assets
    app.state.service = svc
    app.state.job_views = {}

    app.include_router(api_system.router)
    app.include_router(api_kb.router)
    app.include_router(api_jobs.router)
    add_job_kind(app, JobKind("kb-search-batch", api_kb.SearchBatch, api_kb.run_search_batch,
                              "many KB searches at once"))
    for module in APP_GROUPS:
        name = module.rsplit("_", 1)[-1]
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            svc.apps[name] = f"not available ({e})"
            continue
        try:
            svc.apps[name] = mod.mount(app, svc)
        except ImportError as e:  # the group exists but its application is not there
            svc.apps[name] = f"not available ({e})"
    app.include_router(ui.router)

    static = Path(__file__).parent / "static"
    swagger = api_system.swagger_assets()
    if swagger is not None:
        app.mount("/static/swagger", StaticFiles(directory=str(swagger)), name="swagger")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote

        return RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    if config.cors_origins:  # off unless origins are named explicitly
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"], allow_credentials=False)
    from secfoundry.serve.fastpath import FastLookup

    app.add_middleware(FastLookup, service=svc)  # cached GET /kb/{id} answered before routing (inside Guard)
    app.add_middleware(Guard, service=svc)
    return app


def add_job_kind(app: FastAPI, kind: JobKind) -> None:
    """Register a job kind with the manager and give it its typed ``POST /jobs/{kind}`` route."""
    app.state.service.jobs.register(kind)
    api_jobs.add_kind_route(app, kind)


