"""The HTML pages: /login, the live board (/), one alarm, the history, enterprises and their
ledger, the region map and the KPIs. Each page is a shell (header, navigation, the page's own
markup and scripts); its data comes from the JSON API, which checks role and scope."""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from string import Template

from aiohttp import web

from dashboard.context import CONFIG
from dashboard.i18n import remember_lang, request_lang, strings
from dashboard.responses import NO_STORE, session_of

NAV = (
    ("board", "/"),
    ("history", "/history"),
    ("enterprises", "/enterprises"),
    ("map", "/map"),
    ("kpi", "/kpi"),
)


@functools.cache
def _template(name: str) -> Template:
    return Template(resources.files("dashboard").joinpath("templates", name).read_text(encoding="utf-8"))


def _script_json(data: object) -> str:
    """JSON safe inside <script type="application/json"> (no '</script>' can close it early)."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render(
    name: str,
    texts: dict[str, str],
    config: Mapping[str, object],
    raw: Mapping[str, str] | None = None,
    **extra: str,
) -> str:
    """A template with every text escaped; ``raw`` holds markup already rendered from templates."""
    values = {key: html.escape(value) for key, value in {**texts, **extra}.items()}
    values["config_json"] = _script_json(config)
    values.update(raw or {})
    return _template(name).substitute(values)


def _page(request: web.Request, body: str, lang: str, chosen: bool) -> web.Response:
    response = web.Response(text=body, content_type="text/html", charset="utf-8", headers=NO_STORE)
    if chosen:
        remember_lang(response, lang, request.app[CONFIG].secure_cookies or request.secure)
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    lang, chosen = request_lang(request)
    if session_of(request) is not None:
        raise web.HTTPFound("/")
    texts = strings(lang)
    config = {
        "lang": lang,
        "strings": {k: texts[k] for k in ("login_failed", "login_throttled", "login_error")},
    }
    return _page(request, render("login.html", texts, config), lang, chosen)


@dataclass(frozen=True, slots=True)
class PageSpec:
    """One page of the app: its navigation key, title string, body template and scripts."""

    nav: str
    title: str
    body: str
    scripts: tuple[str, ...]
    live: bool = False  # shows the live-link status (the board)


DETAIL_SCRIPTS = ("format.js", "trend.js", "detail.js")
PAGES = {
    "board": PageSpec(
        "board", "board_title", "board.html", (*DETAIL_SCRIPTS, "beep.js", "board.js"), live=True
    ),
    "alarm": PageSpec("board", "detail", "alarm.html", (*DETAIL_SCRIPTS, "alarm.js")),
    "history": PageSpec("history", "history_title", "history.html", ("format.js", "history.js")),
    "enterprises": PageSpec(
        "enterprises", "enterprises_title", "enterprises.html", ("format.js", "enterprises.js")
    ),
    "enterprise": PageSpec(
        "enterprises", "enterprise_title", "enterprise.html", ("format.js", "enterprise.js")
    ),
    "map": PageSpec("map", "map_title", "map.html", ("format.js", "map.js")),
    "kpi": PageSpec("kpi", "kpi_title", "kpi.html", ("format.js", "charts.js", "kpi.js")),
}


def _nav(texts: dict[str, str], current: str) -> str:
    links = []
    for key, href in NAV:
        mark = ' aria-current="page" class="current"' if key == current else ""
        links.append(f'<a href="{href}" data-nav="{key}"{mark}>{html.escape(texts["nav_" + key])}</a>')
    return "".join(links)


def _app_page(request: web.Request, spec: PageSpec, page: Mapping[str, object] | None = None) -> web.Response:
    lang, chosen = request_lang(request)
    session = session_of(request)
    if session is None:
        response = web.HTTPFound("/login")
        if chosen:
            remember_lang(response, lang, request.app[CONFIG].secure_cookies or request.secure)
        raise response
    texts = strings(lang)
    who = session.principal
    config = {
        "lang": lang,
        "timezone": request.app[CONFIG].timezone,
        "csrf_token": session.csrf_token,
        "user": who.public(),
        "page": dict(page or {}),
        "shelving": request.app[CONFIG].policy.shelving.model_dump(),
        "strings": texts,
    }
    escaped = {k: html.escape(v) for k, v in texts.items()}
    panel = _template("detail_panel.html").substitute(escaped)
    body = _template(spec.body).substitute(escaped, detail_panel=panel)
    scripts = "".join(f'<script src="/static/{name}" defer></script>' for name in spec.scripts)
    shell = render(
        "page.html",
        texts,
        config,
        raw={"nav": _nav(texts, spec.nav), "body": body, "scripts": scripts},
        title=texts[spec.title],
        page_name=spec.body.removesuffix(".html"),
        live_hidden="" if spec.live else "hidden",
        here=request.path,
        user_display=who.display_name or who.username,
        user_role=texts[f"role_{who.role.value}"],
    )
    return _page(request, shell, lang, chosen)


def _id(request: web.Request, name: str) -> int:
    value = int(request.match_info[name])  # the route allows digits only
    if value > 2**63 - 1:
        raise web.HTTPNotFound()
    return value


async def board_page(request: web.Request) -> web.StreamResponse:
    return _app_page(request, PAGES["board"])


async def alarm_page(request: web.Request) -> web.StreamResponse:
    return _app_page(request, PAGES["alarm"], {"alarm_id": _id(request, "alarm_id")})


async def history_page(request: web.Request) -> web.StreamResponse:
    return _app_page(request, PAGES["history"])


async def enterprises_page(request: web.Request) -> web.StreamResponse:
    return _app_page(request, PAGES["enterprises"])


async def enterprise_page(request: web.Request) -> web.StreamResponse:
    return _app_page(request, PAGES["enterprise"], {"enterprise_id": _id(request, "enterprise_id")})


async def map_page(request: web.Request) -> web.StreamResponse:
    return _app_page(request, PAGES["map"])


async def kpi_page(request: web.Request) -> web.StreamResponse:
    return _app_page(request, PAGES["kpi"])
