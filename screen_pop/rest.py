"""The CRM REST API (role-checked), over the shared store.

Routes::

    GET  /api/customers?q=NAME|phone=NUMBER|account=NO[&limit=N]   agent, supervisor
         -> {"customers": [...]}
    GET  /api/customers/{id}                   agent, supervisor -> the 360 view
    POST /api/customers                        supervisor -> the customer (upsert by account_no)
    POST /api/customers/{id}/contacts          agent, supervisor -> 201 the contact
         {"channel": "email|web|sms|fax|phone", "direction": "inbound|outbound",
          "at"?: epoch, "disposition"?: str, "notes"?: str}; an agent's contacts carry their id
    GET  /api/calls?since&until&agent&customer&outcome&limit       supervisor (an agent: own calls)
         -> {"calls": [...]}

Domain errors become HTTP errors here and only here: InvalidInput 400, NotFound 404,
Conflict 409, each as ``{"error": id, "message": text}``.  Admin passes every role check.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from crm_core.errors import Conflict, InvalidInput, NotFound
from screen_pop.auth import SESSION_KEY, json_error, require_role

__all__ = ["CRM_KEY", "add_crm_routes"]

CRM_KEY = web.AppKey("crm", object)  # the store (crm_core.store.Store or alike)
MAX_BODY = 64 * 1024
MAX_LIMIT = 500


def add_crm_routes(app: web.Application, crm: object) -> None:
    app[CRM_KEY] = crm
    app.router.add_get("/api/customers", search_customers)
    app.router.add_post("/api/customers", upsert_customer)
    app.router.add_get("/api/customers/{id:\\d+}", customer_360)
    app.router.add_post("/api/customers/{id:\\d+}/contacts", log_contact)
    app.router.add_get("/api/calls", list_calls)


def _crm(request: web.Request) -> Any:
    return request.app[CRM_KEY]


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.content.read(MAX_BODY + 1)
    try:
        if len(raw) > MAX_BODY:
            raise ValueError("too large")
        body = json.loads(raw)
    except ValueError:
        raise json_error(web.HTTPBadRequest, "bad-request", "expected a JSON object body") from None
    if not isinstance(body, dict):
        raise json_error(web.HTTPBadRequest, "bad-request", "expected a JSON object body")
    return body


def _num(request: web.Request, name: str, kind: type = float) -> Any:
    v = request.query.get(name)
    if v is None or v == "":
        return None
    try:
        return kind(v)
    except ValueError:
        raise json_error(web.HTTPBadRequest, "bad-request", f"{name} must be a number") from None


def _limit(request: web.Request, default: int = 20) -> int:
    n = _num(request, "limit", int)
    return default if n is None else max(1, min(MAX_LIMIT, n))


async def _domain(coro: Any) -> Any:
    try:
        return await coro
    except InvalidInput as e:
        raise json_error(web.HTTPBadRequest, "invalid-input", str(e)) from None
    except NotFound as e:
        raise json_error(web.HTTPNotFound, "not-found", str(e)) from None
    except Conflict as e:
        raise json_error(web.HTTPConflict, "conflict", str(e)) from None


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(text=json.dumps(data, default=str), status=status)


@require_role("agent", "supervisor")
async def search_customers(request: web.Request) -> web.StreamResponse:
    crm, q = _crm(request), request.query
    if q.get("phone"):
        c = await _domain(crm.find_customer_by_phone(q["phone"]))
        found = [c] if c is not None else []
    elif q.get("account"):
        c = await _domain(crm.find_customer_by_account(q["account"]))
        found = [c] if c is not None else []
    elif q.get("q"):
        found = await _domain(crm.search_customers(q["q"], limit=_limit(request)))
    else:
        raise json_error(web.HTTPBadRequest, "bad-request", "give q (name prefix), phone or account")
    return _json({"customers": [c.to_json() for c in found]})


@require_role("agent", "supervisor")
async def customer_360(request: web.Request) -> web.StreamResponse:
    view = await _domain(_crm(request).customer_360(int(request.match_info["id"])))
    return _json(view.to_json())


_CUSTOMER_FIELDS = ("email", "segment", "value_tier", "monthly_revenue", "account_manager", "tenure_months")


@require_role("supervisor")
async def upsert_customer(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    account, name, phones = body.get("account_no"), body.get("name"), body.get("phones", [])
    if not isinstance(account, str) or not isinstance(name, str) or not isinstance(phones, list) \
            or not all(isinstance(p, str) for p in phones):
        raise json_error(web.HTTPBadRequest, "bad-request",
                         "account_no and name (strings) and phones (a list of strings) are required")
    extra = {k: body[k] for k in _CUSTOMER_FIELDS if k in body}
    c = await _domain(_crm(request).upsert_customer(account, name, phones, **extra))
    return _json(c.to_json())


@require_role("agent", "supervisor")
async def log_contact(request: web.Request) -> web.StreamResponse:
    session = request[SESSION_KEY]
    body = await _body(request)
    at = body.get("at", time.time())
    if not isinstance(at, (int, float)) or isinstance(at, bool):
        raise json_error(web.HTTPBadRequest, "bad-request", "at must be epoch seconds")
    for key in ("channel", "direction", "disposition", "notes"):
        if key in body and body[key] is not None and not isinstance(body[key], str):
            raise json_error(web.HTTPBadRequest, "bad-request", f"{key} must be a string")
    crm = _crm(request)
    cid = int(request.match_info["id"])
    if await _domain(crm.get_customer(cid)) is None:
        raise json_error(web.HTTPNotFound, "not-found", f"customer {cid} not found")
    agent_id = session.agent_id if session.role == "agent" else body.get("agent_id")
    contact = await _domain(crm.log_contact(cid, str(body.get("channel", "")), str(body.get("direction", "")),
                                            at, agent_id=agent_id, disposition=body.get("disposition"),
                                            notes=body.get("notes")))
    return _json(contact.to_json(), status=201)


@require_role("agent", "supervisor")
async def list_calls(request: web.Request) -> web.StreamResponse:
    session, q = request[SESSION_KEY], request.query
    agent = q.get("agent") or None
    if session.role == "agent":  # an agent reads their own calls only
        if agent not in (None, session.agent_id):
            raise json_error(web.HTTPForbidden, "forbidden", "agents see their own calls only")
        agent = session.agent_id or "\0none"
    calls = await _domain(_crm(request).list_calls(
        since=_num(request, "since"), until=_num(request, "until"), agent_id=agent,
        customer_id=_num(request, "customer", int), outcome=q.get("outcome") or None,
        limit=_limit(request, 100)))
    return _json({"calls": [c.to_json() for c in calls]})
