"""The web UI's shell: login/logout, home, KB search and entity pages, jobs. Server-rendered
(jinja2, autoescaped), one local CSS and one local JS file, no build step, nothing from a CDN.

App pages live in ``ui_apps.py``; they reuse ``render`` and the ``require_ui`` dependency
(session cookie + CSRF token on every POST).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from secfoundry.serve.api_kb import kb_search, kb_show
from secfoundry.serve.security import require_ui, ui_session
from secfoundry.serve.sessions import COOKIE

HERE = Path(__file__).parent
env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]))
templates = Jinja2Templates(env=env)

try:
    from secfoundry.kb.ids import _FIND as _ID_RE  # the KB's own free-text id pattern
except ImportError:  # pragma: no cover - fall back to the common shapes
    _ID_RE = re.compile(r"(?<![\w-])(?:T\d{4}(?:\.\d{3})?|CWE-\d{1,5}|CAPEC-\d{1,5}|CVE-\d{4}-\d{4,7})(?![\w-])")


def link_ids(text: Any) -> Markup:
    """Escape ``text`` and turn every id it mentions into a link to its entity page."""
    s = str(text or "")
    out, last = [], 0
    for m in _ID_RE.finditer(s):
        out.append(escape(s[last:m.start()]))
        ident = m.group(0)
        out.append(Markup('<a class="idlink" href="/ui/kb/{0}">{1}</a>').format(ident.upper(), ident))
        last = m.end()
    out.append(escape(s[last:]))
    return Markup("").join(out)


def readable(text: Any) -> str:
    try:
        from secfoundry.kb.text import readable as kb_readable

        return kb_readable(str(text or ""))
    except ImportError:  # pragma: no cover
        return str(text or "")


env.filters["link_ids"] = link_ids
env.filters["readable"] = readable
env.globals["nav"] = [("/ui/", "Home")]  # app pages append theirs when their app is available


def render(request: Request, name: str, **ctx: Any) -> HTMLResponse:
    ctx.setdefault("csrf", getattr(request.state, "csrf", ""))
    ctx.setdefault("who", getattr(request.state, "who", ""))
    return templates.TemplateResponse(request, name, ctx)


router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/ui/") -> HTMLResponse:
    return render(request, "login.html", next=_safe_next(next), error="", who="")


def _safe_next(target: str) -> str:
    """Only same-site UI paths (no open redirect to another host)."""
    return target if re.fullmatch(r"/ui/[A-Za-z0-9_./?=&%-]*", target or "") and "//" not in target else "/ui/"


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, key: str = Form(..., max_length=200), next: str = Form("/ui/")) -> Response:
    svc = request.app.state.service
    verdict = svc.keys.verify(key.strip())
    if verdict.key is None:
        request.state.who = "login-failed"
        resp = render(request, "login.html", next=_safe_next(next), who="",
                      error="That key was revoked." if verdict.revoked else "Unknown API key.")
        resp.status_code = 401
        return resp
    wait = svc.limiter.check(f"key:{verdict.key.id}")
    if wait > 0:
        raise HTTPException(429, detail="rate limited", headers={"Retry-After": str(int(wait) + 1)})
    token, _ = svc.sessions.create(verdict.key.id, verdict.key.name)
    request.state.who = f"{verdict.key.name}({verdict.key.prefix})"
    resp = RedirectResponse(_safe_next(next), status_code=303)
    resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=svc.config.secure_cookies,
                    max_age=int(svc.sessions.ttl), path="/")
    return resp


@router.post("/logout")
def logout(request: Request, _: Any = Depends(require_ui)) -> Response:
    request.app.state.service.sessions.end(request.cookies.get(COOKIE))
    resp = RedirectResponse("/ui/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp


@router.get("/", response_class=HTMLResponse)
def home(request: Request, _: Any = Depends(require_ui)) -> HTMLResponse:
    svc = request.app.state.service
    who = request.state.key.name
    return render(request, "home.html", jobs=svc.jobs.list(owner=who, limit=20), apps=svc.apps,
                  kb_exists=svc.kb_db_path().exists())


async def run_ui(request: Request, fn: Any, *args: Any) -> Any:
    svc = request.app.state.service
    try:
        return await svc.requests.run(fn, *args, timeout=svc.config.request_timeout_s)
    except asyncio.TimeoutError:
        raise HTTPException(504, detail="timed out: submit this as a job from the API instead") from None


@router.get("/kb", response_class=HTMLResponse)
async def kb_page(request: Request, q: str = "", type: str = "", _: Any = Depends(require_ui)) -> HTMLResponse:
    hits: list[Any] = []
    q = q[:2000]
    svc = request.app.state.service
    if q.strip() and svc.kb_db_path().exists():
        hits = await run_ui(request, kb_search, q, type or None, 25)
    return render(request, "kb_search.html", q=q, type=type, hits=hits, kb_exists=svc.kb_db_path().exists())


@router.get("/kb/{id}", response_class=HTMLResponse)
async def kb_entity(request: Request, id: str, _: Any = Depends(require_ui)) -> HTMLResponse:
    if len(id) > 200 or not request.app.state.service.kb_db_path().exists():
        raise HTTPException(404, detail="not found")
    code, entry = await run_ui(request, kb_show, id)
    resp = render(request, "kb_entity.html", entry=entry if code == 200 else None, error=entry.get("error", ""),
                  id=id)
    resp.status_code = code
    return resp


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, _: Any = Depends(require_ui)) -> HTMLResponse:
    svc = request.app.state.service
    return render(request, "jobs.html", jobs=svc.jobs.list(owner=request.state.key.name, limit=200))


def job_for_ui(request: Request, job_id: str) -> dict[str, Any]:
    svc = request.app.state.service
    job = svc.jobs.get(job_id) if re.fullmatch(r"job_[0-9a-f]{16}", job_id) else None
    if job is None or job["owner"] != request.state.key.name:
        raise HTTPException(404, detail="no such job")
    return job


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str, _: Any = Depends(require_ui)) -> Response:
    """A job's page: its app's result view when done, else status with a refresh."""
    job = job_for_ui(request, job_id)
    view = request.app.state.job_views.get(job["kind"])
    if job["status"] == "done" and view is not None:
        svc = request.app.state.service
        return view(request, job, svc.jobs.params(job_id), svc.jobs.result(job_id))
    return render(request, "job.html", job=job)
