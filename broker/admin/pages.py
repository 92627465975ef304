"""The console's pages: server-rendered HTML (Jinja2, autoescaped) and the console's own
static files (one stylesheet, small script modules; no inline script or style, so the
CSP's ``'self'`` holds).

A page needs a session (the cookie): without one it redirects to ``/login`` (the API
routes answer 401 instead); a role below the page's gets the 403 page. The session's
CSRF token is in the page's ``<meta name="csrf-token">``, for the scripts' changes. No
page takes patient data in its URL: the pages read it from the API (POST searches).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from broker.admin.security import CookiePolicy, auth_of
from broker.services.auth import MAX_PASSWORD, MIN_PASSWORD, Role, Session
from broker.worklist.edits import EDITABLE, STATUSES

__all__ = ["NAV", "mount_static", "router"]

_HERE = Path(__file__).parent
templates = Jinja2Templates(directory=_HERE / "templates")
router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str
    role: Role


NAV = (
    NavItem("/", "Dashboard", Role.VIEWER),
    NavItem("/mappings", "Mappings", Role.VIEWER),
    NavItem("/worklist", "Worklist", Role.VIEWER),
    NavItem("/messages", "Messages", Role.VIEWER),
    NavItem("/scanners", "Scanners", Role.VIEWER),
    NavItem("/outbound", "Outbound", Role.VIEWER),
    NavItem("/users", "Users", Role.ADMIN),
)


class _LoginFirst(Exception):
    """No session: the page redirects to the login page."""


def _session(request: Request) -> Session:
    policy: CookiePolicy = request.app.state.cookie
    session_id = request.cookies.get(policy.name)
    session = auth_of(request).session(session_id) if session_id else None
    if session is None:
        raise _LoginFirst
    return session


Viewer = Annotated[Session, Depends(_session)]


def render(
    request: Request,
    template: str,
    session: Session,
    *,
    title: str,
    status: int = 200,
    extra: dict[str, object] | None = None,
) -> HTMLResponse:
    """``template`` in the console's layout, for ``session``'s user (``extra``: the page's
    own values)."""
    role = session.principal.role
    context = {
        **(extra or {}),
        "title": title,
        "user": session.principal.name,
        "role": role.value,
        "csrf": session.csrf,
        "nav": [item for item in NAV if role.allows(item.role)],
        "current": request.url.path,
    }
    return templates.TemplateResponse(request, template, context, status_code=status)


def page(
    request: Request,
    template: str,
    session: Session,
    *,
    title: str,
    role: Role = Role.VIEWER,
    extra: dict[str, object] | None = None,
) -> HTMLResponse:
    """The page, or the 403 page when ``session``'s role is below ``role``."""
    if not session.principal.role.allows(role):
        return render(request, "forbidden.html", session, title="Not allowed", status=403)
    return render(request, template, session, title=title, extra=extra)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "login.html", {"title": "Log in"})


@router.get("/", response_class=HTMLResponse)
def dashboard_page(request: Request, session: Viewer) -> HTMLResponse:
    return page(request, "dashboard.html", session, title="Dashboard")


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, session: Viewer) -> HTMLResponse:
    passwords: dict[str, object] = {"min_password": MIN_PASSWORD, "max_password": MAX_PASSWORD}
    return page(
        request, "users.html", session, title="Users and tokens", role=Role.ADMIN, extra=passwords
    )


@router.get("/worklist", response_class=HTMLResponse)
def worklist_page(request: Request, session: Viewer) -> HTMLResponse:
    extra: dict[str, object] = {
        "editor": session.principal.role.allows(Role.EDITOR),
        "editable": [e.keyword for e in EDITABLE.values()],
        "statuses": sorted(STATUSES),
    }
    return page(request, "worklist.html", session, title="Worklist", extra=extra)


@router.get("/scanners", response_class=HTMLResponse)
def scanners_page(request: Request, session: Viewer) -> HTMLResponse:
    return page(request, "scanners.html", session, title="Scanners")


@router.get("/mappings", response_class=HTMLResponse)
def mappings_page(request: Request, session: Viewer) -> HTMLResponse:
    return page(request, "mappings.html", session, title="Mappings")


@router.get("/messages", response_class=HTMLResponse)
def messages_page(request: Request, session: Viewer) -> HTMLResponse:
    return page(request, "messages.html", session, title="Messages")


@router.get("/outbound", response_class=HTMLResponse)
def outbound_page(request: Request, session: Viewer) -> HTMLResponse:
    extra: dict[str, object] = {"editor": session.principal.role.allows(Role.EDITOR)}
    return page(request, "outbound.html", session, title="Outbound", extra=extra)


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, session: Viewer) -> HTMLResponse:
    return page(request, "account.html", session, title="Your account")


async def _login_first(request: Request, exc: Exception) -> Response:
    return RedirectResponse("/login", status_code=303)


def mount_static(app: FastAPI) -> None:
    """``/static``: the console's stylesheet and scripts; the redirect to the login page."""
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    app.add_exception_handler(_LoginFirst, _login_first)
