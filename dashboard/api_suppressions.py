"""JSON API of plant states that mask alarms: suppression by design (maintenance, start-up or
shutdown of a hazard source or one piece of its equipment) and tags out of service.

Both are the enterprise's declarations about its own plant, so only enterprise users make
them, for their own enterprise; duty officers and regulators read them within their region.
The system administrator manages users and the ledger but cannot silence a plant's alarms
(administrators see no alarm data at all): a tag declared out of service in devices.yaml is
the ledger's way. Outside the caller's scope a hazard source, suppression or tag answers 404,
like a missing one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from alarms.store import declare_suppression, end_suppression, set_tag_service
from dashboard.actions import (
    actor_of,
    bad_request,
    bool_field,
    choice,
    forbidden,
    policy_of,
    required_id,
    run_store,
    text_field,
    time_field,
)
from dashboard.context import POOL
from dashboard.responses import int_param, json_body, json_response, not_found, require_principal
from dashboard.scope import Principal, Role
from dashboard.workflow_queries import (
    SUPPRESSION_STATES,
    equipment_id_of,
    hazard_source_in_scope,
    suppression,
    suppressions,
    tag_service,
)

REASON_KINDS = ("maintenance", "startup", "shutdown")
MAX_SUPPRESSION = timedelta(days=31)


def _enterprise_only(who: Principal, what: str) -> None:
    if who.role != Role.ENTERPRISE:
        raise forbidden(f"only the enterprise {what}")


async def suppression_declare(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/suppressions {hazard_source_id, equipment_code, reason_kind, reason, starts_at,
    ends_at} — declare maintenance, start-up or shutdown (201): the covered alarms are suppressed
    from its start (default now) to its end.

    ``equipment_code`` (optional) narrows it to one piece of the hazard source's equipment."""
    who = require_principal(request)
    _enterprise_only(who, "declares maintenance or start-up")
    body = await json_body(request)
    source_id = required_id(body, "hazard_source_id")
    equipment_code = text_field(body, "equipment_code", required=False, max_len=64)
    reason_kind = choice(body, "reason_kind", REASON_KINDS)
    reason = text_field(body, "reason", required=True)
    now = datetime.now(UTC)
    starts_at = time_field(body, "starts_at") or now
    ends_at = time_field(body, "ends_at")
    if ends_at is None:
        raise bad_request("ends_at is required (ISO 8601 with an offset)")
    if ends_at <= starts_at or ends_at <= now:
        raise bad_request("a suppression must end after it starts, and in the future")
    if ends_at - starts_at > MAX_SUPPRESSION:
        raise bad_request(f"a suppression may last at most {MAX_SUPPRESSION.days} days")
    async with request.app[POOL].connection() as conn:
        if not await hazard_source_in_scope(conn, who, source_id):
            not_found("hazard source")
        equipment_id = await equipment_id_of(conn, source_id, equipment_code) if equipment_code else None
    if equipment_code and equipment_id is None:
        not_found("equipment")
    actor = actor_of(who)
    suppression_id = await run_store(
        request,
        "hazard source",
        lambda c: declare_suppression(
            c,
            hazard_source_id=source_id,
            equipment_id=equipment_id,
            reason_kind=reason_kind,
            reason=reason,
            starts_at=starts_at,
            ends_at=ends_at,
            actor=actor,
            now=now,
        ),
    )
    async with request.app[POOL].connection() as conn:
        row = await suppression(conn, who, suppression_id)
    return json_response({"suppression": row}, 201)


async def suppressions_list(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/suppressions?state=current|all — declared suppressions in scope; current: in
    force or still to come."""
    who = require_principal(request)
    state = request.query.get("state", "current")
    if state not in SUPPRESSION_STATES:
        raise bad_request(f"state must be one of {', '.join(SUPPRESSION_STATES)}")
    async with request.app[POOL].connection() as conn:
        rows = await suppressions(conn, who, state)
    return json_response({"suppressions": rows})


async def suppression_end(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/suppressions/{id}/end — end it now; its alarms still active re-annunciate."""
    who = require_principal(request)
    suppression_id = int_param(request.match_info["suppression_id"], "suppression id", high=2**63 - 1)
    async with request.app[POOL].connection() as conn:
        if await suppression(conn, who, suppression_id) is None:
            not_found("suppression")
    _enterprise_only(who, "ends its suppressions")
    actor, policy = actor_of(who), policy_of(request)
    released = await run_store(
        request, "suppression", lambda c: end_suppression(c, suppression_id, actor, policy)
    )
    async with request.app[POOL].connection() as conn:
        row = await suppression(conn, who, suppression_id)
    return json_response({"suppression": row, "released": released})


async def tag_set_service(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/tags/{id}/service {in_service, reason} — out of service (reason, person and
    time kept) masks its open alarms as OUT_OF_SERVICE; back in service re-annunciates them."""
    who = require_principal(request)
    tag_id = int_param(request.match_info["tag_id"], "tag id")
    body = await json_body(request)
    in_service = bool_field(body, "in_service")
    reason = text_field(body, "reason", required=not in_service)
    async with request.app[POOL].connection() as conn:
        if await tag_service(conn, who, tag_id) is None:
            not_found("tag")
    _enterprise_only(who, "takes its tags out of service")
    actor, policy = actor_of(who), policy_of(request)
    moved = await run_store(
        request, "tag", lambda c: set_tag_service(c, tag_id, in_service, actor, reason, policy)
    )
    async with request.app[POOL].connection() as conn:
        row = await tag_service(conn, who, tag_id)
    return json_response({"tag": row, "alarms_moved": moved})
