"""Feedback attachments: a multipart form read as a stream under its own limits, and the
download response.

The app refuses bodies over 64 KiB (``client_max_size``); an attachment may have 5 MiB, so the
feedback form is not read with ``request.post()`` but part by part, each capped while it
streams: an oversized upload is refused (413) without being held in memory.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote, unquote

from aiohttp import BodyPartReader, hdrs, web
from aiohttp.http_exceptions import BadHttpMessage

from alarms.store import MAX_ATTACHMENT, Attachment
from dashboard.actions import MAX_TEXT, bad_request
from dashboard.responses import ApiError

FORM_FIELDS: Final = frozenset({"reason", "measures"})
FILE_FIELD: Final = "attachment"
MAX_FORM = MAX_ATTACHMENT + 64 * 1024  # the file and the text fields, with their part headers
MAX_PARTS = 8
MAX_NAME = 200
CHUNK = 64 * 1024
OCTET_STREAM = "application/octet-stream"
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f"]')
# types a browser may be handed as they are; anything else downloads as octet-stream
SAFE_TYPES: Final = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "text/csv",
        "application/zip",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
)


def too_large() -> ApiError:
    return ApiError(413, "too_large", f"an attachment may have at most {MAX_ATTACHMENT // (1024 * 1024)} MiB")


def clean_name(filename: str | None) -> str:
    """An uploaded file's name, percent escapes decoded: browsers escape quotes and line breaks
    that way (HTML's multipart encoding), aiohttp and others escape every non-ASCII byte."""
    return safe_name(unquote(filename or ""))


def safe_name(name: str) -> str:
    """The last path component, without control characters or quotes, at most 200 characters."""
    last = re.split(r"[\\/]", name)[-1]
    return _UNSAFE_NAME.sub("", last).strip()[:MAX_NAME] or "attachment"


def clean_type(content_type: str | None) -> str:
    value = (content_type or "").split(";", 1)[0].strip().lower()
    return value if _MIME.match(value) else OCTET_STREAM


async def _read_part(part: BodyPartReader, cap: int, error: ApiError) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        data.extend(chunk)
        if len(data) > cap:
            raise error
    return bytes(data)


def _text(part: BodyPartReader, raw: bytes) -> str:
    try:
        return raw.decode(part.get_charset("utf-8"))
    except (UnicodeDecodeError, LookupError) as err:
        raise bad_request(f"{part.name} must be UTF-8 text") from err


async def read_feedback_form(request: web.Request) -> tuple[dict[str, str], Attachment | None]:
    """The text fields (reason, measures) and the optional file of a multipart feedback form."""
    if request.content_length is not None and request.content_length > MAX_FORM:
        raise too_large()
    fields: dict[str, str] = {}
    attachment: Attachment | None = None
    try:
        reader = await request.multipart()
        for _ in range(MAX_PARTS + 1):
            part = await reader.next()
            if part is None:
                return fields, attachment
            if not isinstance(part, BodyPartReader):
                raise bad_request("nested multipart bodies are not accepted")
            if part.name == FILE_FIELD:
                if attachment is not None:
                    raise bad_request("one attachment per feedback")
                data = await _read_part(part, MAX_ATTACHMENT, too_large())
                if data:  # a form without a chosen file sends an empty part
                    attachment = Attachment(
                        clean_name(part.filename), clean_type(part.headers.get(hdrs.CONTENT_TYPE)), data
                    )
            elif part.name in FORM_FIELDS and part.name not in fields:
                raw = await _read_part(part, MAX_TEXT * 4, bad_request(f"{part.name} is too long"))
                fields[part.name] = _text(part, raw)
            else:
                raise bad_request(f"unexpected form field {part.name!r} (reason, measures, attachment)")
    except (ValueError, KeyError, AssertionError, BadHttpMessage) as err:  # aiohttp's parse errors
        raise bad_request(f"malformed multipart body: {err}") from err
    raise bad_request(f"a feedback form has at most {MAX_PARTS} parts")


def download(name: str, content_type: str | None, data: bytes) -> web.Response:
    """An attachment as a download: never rendered in the app's origin."""
    stored, name = clean_type(content_type), safe_name(name)  # whoever stored it
    fallback = name.encode("ascii", "replace").decode("ascii").replace("?", "_").replace("\\", "_")
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
    return web.Response(
        body=data,
        content_type=stored if stored in SAFE_TYPES else OCTET_STREAM,
        headers={
            hdrs.CONTENT_DISPOSITION: disposition,
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
