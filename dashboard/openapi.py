"""The OpenAPI 3.1 document of ``/api/v1``, built from the app's own routes.

Built from the router, the document cannot forget an endpoint: every route under ``/api/v1``
is in it, with its path parameters, the query parameters and body fields its handler's
docstring names on its first line (``GET /api/v1/x?a=&b=`` and ``{field, other}``), the
docstring as its description, and the security every call needs: the session cookie with the
``X-CSRF-Token`` header on changes, or an API token as a bearer.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from aiohttp import web

from dashboard.responses import json_response

PREFIX = "/api/v1"
_NAME = re.compile(r"^[a-z_]+$")
_BODY = re.compile(r"\{([a-z_][a-z0-9_, |]*)\}")
_PATH_PARAM = re.compile(r"\{([a-z_]+)\}")
FILE_FIELD = "attachment"  # a form field that carries a file (feedback attachments)
BINARY = {"type": "string", "format": "binary"}
PUBLIC = frozenset({("POST", "/api/v1/login"), ("GET", "/api/v1/health"), ("GET", "/api/v1/openapi.json")})
ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}


def _signature(doc: str) -> tuple[str, str, str]:
    """(query string, body fields text, summary) from a docstring's first paragraph:
    ``METHOD /path?query {body} — summary``."""
    paragraph = " ".join(doc.split("\n\n", 1)[0].replace("\n&", "&").split())
    signature, dash, summary = paragraph.partition("—")
    if not dash:
        return "", "", paragraph
    words = signature.split()
    if len(words) < 2 or words[0] not in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        return "", "", summary.strip()
    _, _, query = words[1].partition("?")
    return query, " ".join(words[2:]), summary.strip()


def _operation(method: str, path: str, handler: Any) -> dict[str, Any]:
    doc = inspect.getdoc(handler) or ""
    query, body_text, summary = _signature(doc)
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
        for name in _PATH_PARAM.findall(path)
    ]
    for part in query.split("&"):
        name, _, choices = part.partition("=")
        if not _NAME.match(name):
            continue
        schema: dict[str, Any] = {"type": "string"}
        if "|" in choices:
            schema["enum"] = choices.split("|")
        params.append({"name": name, "in": "query", "required": False, "schema": schema})
    operation: dict[str, Any] = {
        "operationId": handler.__name__,
        "summary": summary.strip()[:120],
        "description": doc,
        "parameters": params,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
            "default": {"description": "an error", "content": {"application/json": {"schema": ERROR}}},
        },
    }
    if method == "GET" and path.endswith("/" + FILE_FIELD):  # a download, not JSON
        operation["responses"]["200"] = {"description": "the file", "content": {"*/*": {"schema": BINARY}}}
    if method == "POST":
        body = _BODY.search(body_text)
        fields = [f.strip().split(" ")[0].split("|")[0] for f in body.group(1).split(",")] if body else []
        operation["requestBody"] = {
            "required": bool(fields),
            "content": {
                "application/json": {"schema": {"type": "object", "properties": {f: {} for f in fields if f}}}
            },
        }
        if "multipart/form-data" in doc:  # the same fields as a form, a file among them
            form = {f: BINARY if f == FILE_FIELD else {"type": "string"} for f in fields if f}
            operation["requestBody"]["content"]["multipart/form-data"] = {
                "schema": {"type": "object", "properties": form}
            }
    if (method, path) in PUBLIC:
        operation["security"] = []
    elif method != "GET":
        operation["security"] = [{"session": [], "csrf": []}, {"token": []}]
    return operation


def build(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD" or not resource.canonical.startswith(PREFIX):
            continue
        path = resource.canonical
        paths.setdefault(path, {})[route.method.lower()] = _operation(route.method, path, route.handler)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "HazardWatch API",
            "version": "1",
            "description": "Alarms, the regulatory loop, history, KPIs and administration of HazardWatch. "
            "Every call is limited to the caller's role and scope; times are ISO 8601 in UTC.",
        },
        "servers": [{"url": "/"}],
        "security": [{"session": []}, {"token": []}],
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "hw_session"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
                "token": {"type": "http", "scheme": "bearer", "description": "an API token (hwt_…)"},
            },
            "schemas": {"Error": ERROR},
        },
        "paths": dict(sorted(paths.items())),
    }


async def openapi(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/openapi.json — this document (no login needed)."""
    return json_response(build(request.app))
