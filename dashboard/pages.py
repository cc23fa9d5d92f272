"""The HTML pages: /login and / (the live alarm board). Data comes from the JSON API."""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Mapping
from importlib import resources
from string import Template

from aiohttp import web

from dashboard.context import CONFIG
from dashboard.i18n import remember_lang, request_lang, strings
from dashboard.responses import NO_STORE, session_of


@functools.cache
def _template(name: str) -> Template:
    return Template(resources.files("dashboard").joinpath("templates", name).read_text(encoding="utf-8"))


def _script_json(data: object) -> str:
    """JSON safe inside <script type="application/json"> (no '</script>' can close it early)."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render(name: str, texts: dict[str, str], config: Mapping[str, object], **extra: str) -> str:
    values = {key: html.escape(value) for key, value in {**texts, **extra}.items()}
    values["config_json"] = _script_json(config)
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


async def board_page(request: web.Request) -> web.StreamResponse:
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
        "strings": texts,
    }
    body = render(
        "board.html",
        texts,
        config,
        user_display=who.display_name or who.username,
        user_role=texts[f"role_{who.role.value}"],
    )
    return _page(request, body, lang, chosen)
