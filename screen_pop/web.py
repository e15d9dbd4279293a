"""The aiohttp application: pages, the login/session API, stats and the two websockets.

Routes::

    GET  /                -> 302 /agent
    GET  /agent           agent desktop (static/agent.html)
    GET  /wallboard       supervisor wallboard (static/wallboard.html)
    GET  /static/...      the pages' js/css
    POST /api/login       {"username","password"} -> 200 {"username","role","agent_id","expires_at"}
                          + session cookie; 400 bad body, 401 wrong, 429 rate-limited
    POST /api/logout      204; closes that session's sockets (and logs the agent out of the ACD
                          when it has no socket left)
    GET  /api/me          200 session's public fields | 401
    GET  /api/stats       acd.snapshot() (supervisor/admin) | 401 | 403
    GET  /api/health      {"ok", "at", "ami": [link state per Asterisk server]} (supervisor/admin)
                          | 401 | 403; "ok" is false while any AMI link is down (status 200)
    POST /api/ivr/reload  reload the IVR flows (admin only; Origin checked as for the sockets)
                          -> 200 {"ok": true, "version", "old_version", "flows", "added", "removed",
                          "changed"} | 422 {"error": "invalid-flows", "errors": [lines], ...}: nothing
                          changed | 401 | 403 | 503 no IVR
    GET  /ws/agent        agent socket (role agent with an agent_id; Origin checked)
    GET  /ws/supervisor   supervisor feed (role supervisor/admin; Origin checked)
    /api/customers..., /api/calls   the CRM REST API (screen_pop.rest)
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from screen_pop.auth import (
    COOKIE_NAME,
    SESSION_KEY,
    SESSIONS_KEY,
    LoginLimiter,
    Session,
    SessionTable,
    check_role,
    json_error,
    request_token,
    require_role,
    session_of,
)
from screen_pop.deps import WebDeps
from screen_pop.hub import Connection, Hub
from screen_pop.messages import ErrorMsg, encode
from screen_pop.rest import add_crm_routes

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")

DEPS_KEY = web.AppKey("deps", WebDeps)
HUB_KEY = web.AppKey("hub", Hub)
LIMITER_KEY = web.AppKey("login_limiter", LoginLimiter)
ORIGINS_KEY = web.AppKey("allowed_origins", frozenset)
STATIC_KEY = web.AppKey("static_dir", Path)

MAX_LOGIN_BODY = 4096

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def _norm_origin(o: str) -> str:
    return o.strip().rstrip("/").lower()


def build_app(deps: WebDeps, *, allowed_origins: list[str],
              static_dir: Path | str = STATIC_DIR) -> web.Application:
    cfg = deps.config
    app = web.Application(client_max_size=64 * 1024)
    app[DEPS_KEY] = deps
    app[HUB_KEY] = Hub(deps)
    app[SESSIONS_KEY] = SessionTable(ttl_s=cfg.session_ttl_s, max_sessions=cfg.max_sessions,
                                     clock=deps.clock)
    app[LIMITER_KEY] = LoginLimiter(max_failures=cfg.login_max_failures, window_s=cfg.login_window_s,
                                    clock=deps.clock)
    app[ORIGINS_KEY] = frozenset(_norm_origin(o) for o in allowed_origins)
    app[STATIC_KEY] = Path(static_dir)
    app.cleanup_ctx.append(_hub_ctx)
    app.on_shutdown.append(_close_sockets)
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/", _root)
    app.router.add_get("/agent", _page("agent.html"))
    app.router.add_get("/wallboard", _page("wallboard.html"))
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)
    app.router.add_get("/api/stats", stats)
    app.router.add_get("/api/health", health)
    app.router.add_post("/api/ivr/reload", ivr_reload)
    app.router.add_get("/ws/agent", ws_agent)
    app.router.add_get("/ws/supervisor", ws_supervisor)
    add_crm_routes(app, deps.customers)
    app.router.add_static("/static/", Path(static_dir), show_index=False, follow_symlinks=False)
    return app


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB_KEY]
    await hub.start()
    yield
    await hub.stop()


async def _close_sockets(app: web.Application) -> None:
    """On shutdown, before the server waits for its handlers: the websockets' never end alone."""
    await app[HUB_KEY].close_all()


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", CSP)
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")


async def _root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/agent")


def _page(name: str) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(request.app[STATIC_KEY] / name)

    return handler


# -- REST --------------------------------------------------------------------------------


async def login(request: web.Request) -> web.StreamResponse:
    app = request.app
    deps = app[DEPS_KEY]
    try:
        raw = await request.content.read(MAX_LOGIN_BODY + 1)
        if len(raw) > MAX_LOGIN_BODY:
            raise ValueError("too large")
        body = json.loads(raw)
    except ValueError:
        raise json_error(web.HTTPBadRequest, "bad-request", "expected a JSON body") from None
    username = body.get("username") if isinstance(body, dict) else None
    password = body.get("password") if isinstance(body, dict) else None
    if not (isinstance(username, str) and isinstance(password, str)) or not username \
            or len(username) > 128 or len(password) > 1024:
        raise json_error(web.HTTPBadRequest, "bad-request", "username and password are required")
    limiter = app[LIMITER_KEY]
    wait = limiter.retry_after(username)
    if wait is not None:
        log.warning("login rate-limited", extra={"user": username[:64]})
        raise json_error(web.HTTPTooManyRequests, "rate-limited", "too many failed logins",
                         headers={"Retry-After": str(max(1, int(wait + 0.999)))})
    user = await deps.auth.verify_user(username, password)
    if user is None:
        limiter.failure(username)
        log.info("login failed", extra={"user": username[:64]})
        raise json_error(web.HTTPUnauthorized, "bad-credentials", "wrong username or password")
    limiter.success(username)
    s = app[SESSIONS_KEY].create(user.username, user.role, user.agent_id)
    log.info("login %s (%s)", user.username, user.role)
    resp = web.json_response(s.public())
    resp.set_cookie(COOKIE_NAME, s.token, httponly=True, samesite="Strict", path="/",
                    max_age=int(deps.config.session_ttl_s), secure=deps.config.cookie_secure)
    return resp


async def logout(request: web.Request) -> web.StreamResponse:
    token, _ = request_token(request)
    resp = web.Response(status=204)
    resp.del_cookie(COOKIE_NAME, path="/")
    if token is None:
        return resp
    s = request.app[SESSIONS_KEY].delete(token)
    if s is None:
        return resp
    orphaned = await request.app[HUB_KEY].close_session(token)
    acd = request.app[DEPS_KEY].acd
    if s.agent_id is not None and (s.agent_id in orphaned or not request.app[HUB_KEY].connections(s.agent_id)):
        try:
            acd.logout(s.agent_id)
        except Exception as exc:  # noqa: BLE001  already logged out, on a call ...: logged, the logout goes on
            log.info("acd logout refused: %s", exc, extra={"agent_id": s.agent_id})
    log.info("logout %s", s.username)
    return resp


async def me(request: web.Request) -> web.StreamResponse:
    s = check_role(session_of(request), ())
    return web.json_response(s.public())


@require_role("supervisor")
async def stats(request: web.Request) -> web.StreamResponse:
    snap = request.app[DEPS_KEY].acd.snapshot()
    return web.json_response(text=json.dumps(snap, default=str))


@require_role("supervisor")
async def health(request: web.Request) -> web.StreamResponse:
    """Every Asterisk server's AMI link: up or not, since when, why (``LinkState.to_json``)."""
    deps = request.app[DEPS_KEY]
    states = list(deps.links.link_states()) if deps.links is not None else []
    return web.json_response({"ok": all(s.up for s in states), "at": deps.clock(),
                              "ami": [s.to_json() for s in states]})


@require_role("admin")
async def ivr_reload(request: web.Request) -> web.StreamResponse:
    """Reload the IVR flows: new calls take them, calls in progress keep theirs.  Changes state,
    so its Origin is checked as a websocket's: a cookie (browser) must come with an allowed Origin."""
    s = request[SESSION_KEY]
    _check_origin(request, s, request_token(request)[1], "IVR reload")
    reloader = request.app[DEPS_KEY].ivr
    if reloader is None:
        raise json_error(web.HTTPServiceUnavailable, "no-ivr", "no IVR to reload here")
    result = reloader.reload_ivr(s.username)
    if not result.get("ok"):
        return web.json_response({"error": "invalid-flows", "message": "the flows are not valid; nothing changed",
                                  **result}, status=422)
    return web.json_response(result)


# -- websockets --------------------------------------------------------------------------


def _check_origin(request: web.Request, s: Session, bearer: bool, what: str) -> None:
    """403 unless the Origin is allowed; a Bearer client (no browser) may send none."""
    origin = request.headers.get("Origin")
    if origin is None:
        if not bearer:
            raise json_error(web.HTTPForbidden, "bad-origin", "Origin header required")
    elif _norm_origin(origin) not in request.app[ORIGINS_KEY]:
        log.warning("%s from a foreign origin refused", what, extra={"user": s.username})
        raise json_error(web.HTTPForbidden, "bad-origin", "origin not allowed")


def _ws_session(request: web.Request, roles: tuple[str, ...]) -> Session:
    """Authenticate and authorise a websocket upgrade, then check its Origin."""
    token, bearer = request_token(request)
    s = request.app[SESSIONS_KEY].get(token) if token else None
    s = check_role(s, roles)
    _check_origin(request, s, bearer, "websocket")
    return s


def _ws(request: web.Request) -> web.WebSocketResponse:
    cfg = request.app[DEPS_KEY].config
    return web.WebSocketResponse(heartbeat=cfg.heartbeat_s, max_msg_size=cfg.max_msg_size)


async def _read_loop(hub: Hub, conn: Connection, ws: web.WebSocketResponse) -> None:
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            hub.handle_text(conn, msg.data)
        elif msg.type is WSMsgType.BINARY:
            conn.send(encode(ErrorMsg("bad-frame", "binary frames are not accepted")))
        elif msg.type is WSMsgType.ERROR:
            log.info("websocket error: %s", ws.exception(), extra={"agent_id": conn.agent_id})
            break


async def ws_agent(request: web.Request) -> web.StreamResponse:
    s = _ws_session(request, ("agent",))
    if s.role != "agent" or not s.agent_id:
        raise json_error(web.HTTPForbidden, "forbidden", "an agent login with an agent id is required")
    hub = request.app[HUB_KEY]
    ws = _ws(request)
    await ws.prepare(request)
    conn = Connection(hub, ws, agent_id=s.agent_id, token=s.token, username=s.username)
    log.info("agent socket open", extra={"agent_id": s.agent_id})
    hub.add_agent(conn)
    try:
        await _read_loop(hub, conn, ws)
    finally:
        hub.remove_agent(conn)
        log.info("agent socket closed", extra={"agent_id": s.agent_id})
    return ws


async def ws_supervisor(request: web.Request) -> web.StreamResponse:
    s = _ws_session(request, ("supervisor",))
    hub = request.app[HUB_KEY]
    ws = _ws(request)
    await ws.prepare(request)
    conn = Connection(hub, ws, agent_id=None, token=s.token, username=s.username)
    log.info("supervisor socket open", extra={"user": s.username})
    hub.add_supervisor(conn)
    try:
        await _read_loop(hub, conn, ws)
    finally:
        hub.remove_supervisor(conn)
    return ws
