"""JSON API of an alarm's workflow: shelve and unshelve, disposal feedback (with an optional
attachment) and the regulator's review.

Every handler first finds the alarm within the principal's scope — an alarm outside it answers
404 exactly like a missing one — then checks the role (403), then lets alarms.store make the
change, journaled with the user and role (a refusal from the state machine is 409). The
journal's trigger announces each change to the live board.

Who may do what:

- shelve / unshelve: the roles of the policy's ``shelving.roles`` (default: duty officers and
  enterprise users), within their scope; only the policy's priorities, at most ``max_hours``.
- file feedback: enterprise users, on their own enterprise's alarms.
- review feedback: regulators, within their region.
- read feedback and download attachments: anyone who may see the alarm.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from alarms.notify import deliveries_of
from alarms.store import FEEDBACK_REASONS, file_feedback, review_feedback, shelve, unshelve
from dashboard.actions import (
    MAX_TEXT,
    actor_of,
    bad_request,
    bool_field,
    choice,
    forbidden,
    policy_of,
    run_store,
    text_field,
    time_field,
)
from dashboard.context import POOL
from dashboard.queries import Row, get_alarm, journal
from dashboard.responses import int_param, json_body, json_response, not_found, require_principal
from dashboard.scope import Principal, Role
from dashboard.uploads import download, read_feedback_form
from dashboard.workflow_queries import attachment, escalation_timer, feedback_list

MAX_ID = 2**63 - 1


def alarm_id_of(request: web.Request) -> int:
    return int_param(request.match_info["alarm_id"], "alarm id", high=MAX_ID)


async def alarm_in_scope(request: web.Request, who: Principal, alarm_id: int) -> Row:
    """The alarm if the principal may see it; 404 otherwise (no existence oracle)."""
    async with request.app[POOL].connection() as conn:
        row = await get_alarm(conn, who, alarm_id)
    if row is None:
        not_found("alarm")
    return row


async def alarm_answer(
    request: web.Request, who: Principal, alarm_id: int, *, status: int = 200, feedback: bool = False
) -> web.Response:
    """The alarm after a change, with its journal (and its feedback when asked)."""
    body: dict[str, Any] = {}
    async with request.app[POOL].connection() as conn:
        row = await get_alarm(conn, who, alarm_id)
        if row is None:
            not_found("alarm")
        row["journal"] = await journal(conn, alarm_id)
        body["alarm"] = row
        if feedback:
            body["feedback"] = await feedback_list(conn, alarm_id)
    return json_response(body, status)


# -- shelving ---------------------------------------------------------------------------------------
def _shelf_end(body: dict[str, Any], now: datetime, max_hours: float) -> datetime:
    """``until`` (ISO 8601 with an offset) or ``minutes`` from now — exactly one of them."""
    until = time_field(body, "until")
    minutes = body.get("minutes")
    if (until is None) == (minutes is None):
        raise bad_request("give either until (ISO 8601 with an offset) or minutes")
    if minutes is not None:
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 0 < minutes < 10**6:
            raise bad_request("minutes must be a positive number")
        until = now + timedelta(minutes=minutes)
    assert until is not None  # noqa: S101 - one of the two, checked above
    if until <= now:
        raise bad_request("a shelf must end in the future")
    if until - now > timedelta(hours=max_hours):
        raise bad_request(f"a shelf may last at most {max_hours:g} h")
    return until


async def alarm_shelve(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/alarms/{id}/shelve {reason, until, minutes} — hide it from the board for a while:
    until an ISO 8601 time with its offset, or for a number of minutes (one of the two)."""
    who = require_principal(request)
    alarm_id = alarm_id_of(request)
    policy = policy_of(request)
    body = await json_body(request)
    reason = text_field(body, "reason", required=True)
    now = datetime.now(UTC)
    until = _shelf_end(body, now, policy.shelving.max_hours)
    await alarm_in_scope(request, who, alarm_id)
    if who.role.value not in policy.shelving.roles:
        raise forbidden(f"a {who.role.value} may not shelve alarms")
    actor = actor_of(who)
    await run_store(request, "alarm", lambda c: shelve(c, alarm_id, actor, reason, until, now, policy))
    return await alarm_answer(request, who, alarm_id)


async def alarm_unshelve(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/alarms/{id}/unshelve {comment} — back on the board now (UNACK if still active)."""
    who = require_principal(request)
    alarm_id = alarm_id_of(request)
    policy = policy_of(request)
    comment = text_field(await json_body(request), "comment", required=False)
    await alarm_in_scope(request, who, alarm_id)
    if who.role.value not in policy.shelving.roles:
        raise forbidden(f"a {who.role.value} may not unshelve alarms")
    actor = actor_of(who)
    await run_store(request, "alarm", lambda c: unshelve(c, alarm_id, actor, comment, policy))
    return await alarm_answer(request, who, alarm_id)


# -- feedback and review ----------------------------------------------------------------------------
async def feedback_file(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/alarms/{id}/feedback {reason, measures, attachment} — file disposal feedback:
    JSON without a file, or multipart/form-data with an optional file ``attachment`` (≤ 5 MiB)."""
    who = require_principal(request)
    alarm_id = alarm_id_of(request)
    await alarm_in_scope(request, who, alarm_id)
    if who.role != Role.ENTERPRISE:  # before reading a body of up to 5 MiB
        raise forbidden("only the enterprise files disposal feedback")
    if request.content_type == "multipart/form-data":
        fields, upload = await read_feedback_form(request)
        body: dict[str, Any] = dict(fields)
    else:
        body, upload = await json_body(request), None
    reason = choice(body, "reason", FEEDBACK_REASONS)
    measures = text_field(body, "measures", required=True, max_len=MAX_TEXT)
    actor = actor_of(who)
    await run_store(request, "alarm", lambda c: file_feedback(c, alarm_id, actor, reason, measures, upload))
    return await alarm_answer(request, who, alarm_id, status=201, feedback=True)


async def feedback_get(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/alarms/{id}/feedback — every feedback filed and its review, oldest first."""
    who = require_principal(request)
    alarm_id = alarm_id_of(request)
    alarm = await alarm_in_scope(request, who, alarm_id)
    async with request.app[POOL].connection() as conn:
        rows = await feedback_list(conn, alarm_id)
    return json_response(
        {
            "alarm_id": alarm_id,
            "disposition": alarm["disposition"],
            "feedback_required": alarm["feedback_required"],
            "feedback": rows,
        }
    )


async def feedback_attachment(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/alarms/{id}/feedback/{fid}/attachment — the file, as a download."""
    who = require_principal(request)
    alarm_id = alarm_id_of(request)
    feedback_id = int_param(request.match_info["feedback_id"], "feedback id", high=MAX_ID)
    await alarm_in_scope(request, who, alarm_id)
    async with request.app[POOL].connection() as conn:
        row = await attachment(conn, alarm_id, feedback_id)
    if row is None:
        not_found("attachment")
    return download(str(row["attachment_name"]), row["attachment_type"], bytes(row["attachment"]))


async def alarm_review(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/alarms/{id}/review {accept, comment} — accept the pending feedback, or return
    it with a comment saying why. Accepted feedback closes an alarm already back to normal."""
    who = require_principal(request)
    alarm_id = alarm_id_of(request)
    body = await json_body(request)
    accept = bool_field(body, "accept")
    comment = text_field(body, "comment", required=not accept, max_len=MAX_TEXT)
    await alarm_in_scope(request, who, alarm_id)
    if who.role != Role.REGULATOR:
        raise forbidden("only a regulator reviews disposal feedback")
    actor = actor_of(who)
    await run_store(request, "alarm", lambda c: review_feedback(c, alarm_id, actor, accept, comment))
    return await alarm_answer(request, who, alarm_id, feedback=True)


async def alarm_escalation(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/alarms/{id}/escalation — its escalation timer (stage, steps taken, next due)
    and who was told of it, on which channel, with how many attempts."""
    who = require_principal(request)
    alarm_id = alarm_id_of(request)
    await alarm_in_scope(request, who, alarm_id)
    async with request.app[POOL].connection() as conn:
        timer = await escalation_timer(conn, alarm_id)
    told = await run_store(request, "alarm", lambda conn: deliveries_of(conn, alarm_id))
    return json_response({"alarm_id": alarm_id, "timer": timer, "deliveries": told})
