"""The Starlette application: routes, the error pages and the JSON API's replies.

`make_app(tl)` takes an open (read-only) `Timeline`; every handler reads through it and
nothing else. Pages are permalinks: the whole question is in the URL's parameters.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from timeline import api
from timeline.surfaces.serve import pages
from timeline.surfaces.serve.guard import Guard
from timeline.surfaces.serve.replies import cell, num
from timeline.surfaces.serve.reads import Cache

HERE = Path(__file__).resolve().parent
DEFAULT_MAX_ROWS = 5000


class Server:
    """What the handlers share: the timeline, its facts cache, the templates and limits."""

    def __init__(self, tl: api.Timeline, *, allow_sql: bool = False,
                 max_rows: int = DEFAULT_MAX_ROWS, today=None):
        self.tl, self.allow_sql, self.max_rows = tl, allow_sql, max_rows
        self.cache = Cache(tl)
        self._today = today
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(default=True, default_for_string=True),
                               trim_blocks=True, lstrip_blocks=True)
        self.env.filters["cell"] = cell
        self.env.filters["num"] = num

    def today(self) -> dt.date:
        """The date "today" means (fixed in tests)."""
        return self._today or dt.date.today()

    def html(self, template: str, code: int = 200, **values) -> HTMLResponse:
        """A page rendered from its template (autoescaped)."""
        values.setdefault("allow_sql", self.allow_sql)
        return HTMLResponse(self.env.get_template(template).render(**values),
                            status_code=code)


def make_app(tl: api.Timeline, *, allow_sql: bool = False, max_rows: int = DEFAULT_MAX_ROWS,
             trusted_hosts: list[str] | None = None, today=None) -> Guard:
    """The ASGI app over `tl` (read-only), wrapped in the method and header guard."""
    srv = Server(tl, allow_sql=allow_sql, max_rows=max_rows, today=today)

    def bind(handler):
        def endpoint(request: Request):
            return handler(srv, request)
        endpoint.__name__ = handler.__name__
        return endpoint

    routes: list[BaseRoute] = [Route(path, bind(handler), methods=["GET"])
                               for path, handler in pages.ROUTES]
    if allow_sql:
        routes += [Route(path, bind(handler), methods=["GET"])
                   for path, handler in pages.SQL_ROUTES]
    routes.append(Mount("/static", StaticFiles(directory=HERE / "static"), name="static"))

    async def not_found(request: Request, exc: HTTPException):
        path = request.url.path
        message = (f"no page {path}" if exc.status_code == 404 else str(exc.detail))
        if path.startswith("/api/"):
            return Response(json.dumps({"error": f"error: {message}"}) + "\n",
                            status_code=exc.status_code, media_type="application/json")
        return srv.html("error.html", exc.status_code, title="Not found", message=message,
                        status=exc.status_code)

    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=trusted_hosts)] \
        if trusted_hosts else []
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={
                        HTTPException: not_found})  # type: ignore[dict-item]  # Exception's type
    app.state.server = srv  # what the handlers share, for a look from outside (tests)
    return Guard(app)
