"""IVR hot reload from outside the process: ``cti ivr reload`` and SIGHUP to ``cti serve``.

Both end in :meth:`callcenter.app.CtiApp.reload_ivr` (``ivr.registry.FlowRegistry.reload``): new calls
take the new version of the flows, calls in progress finish on theirs; flows that fail validation
change nothing and are reported one ``FILE: node ID: field: reason`` line each.

How ``cti ivr reload`` reaches the running server: over its REST API, ``POST /api/ivr/reload``
(admin only), after ``POST /api/login`` as an admin user; the session token (from the login's
cookie) goes as a Bearer header (a client that is no browser sends no Origin).  It needs no pidfile
nor access to the server's host, and the server logs who asked.  The password comes from
``$CTI_ADMIN_PASSWORD`` or a prompt.
Exit 0 when the new flows are in place, 2 (``EXIT_USAGE``) when they are not valid (one line per
problem on stdout), 1 when the server cannot be reached or refuses the login or the role.

SIGHUP (``kill -HUP <pid of cti serve>``): :func:`install_reload_signal` on the server's loop; the
reload is logged as asked by ``SIGHUP``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any, Protocol, TextIO

from callcenter.settings import Settings
from callcenter.startup import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from screen_pop.auth import COOKIE_NAME

__all__ = ["PASSWORD_ENV", "add_reload_command", "cmd_reload", "install_reload_signal", "reload_on_signal"]

log = logging.getLogger(__name__)

Loader = Callable[[str | None], Settings]
PASSWORD_ENV = "CTI_ADMIN_PASSWORD"


class Reloadable(Protocol):
    def reload_ivr(self, by: str) -> dict[str, Any]: ...


# -- SIGHUP ---------------------------------------------------------------------------------------


def reload_on_signal(app: Reloadable) -> dict[str, Any] | None:
    """What SIGHUP does: reload, never raise (a handler's exception would only reach the loop's log)."""
    try:
        return app.reload_ivr("SIGHUP")
    except Exception:  # logged with its traceback; the server serves on with its flows
        log.exception("IVR reload on SIGHUP failed")
        return None


def install_reload_signal(app: Reloadable, loop: asyncio.AbstractEventLoop | None = None) -> Callable[[], None]:
    """SIGHUP reloads the IVR flows of ``app`` (call it on the running loop); returns the call that
    removes the handler.  Where signals cannot be handled (Windows), nothing is installed."""
    loop = loop or asyncio.get_running_loop()
    sighup = getattr(signal, "SIGHUP", None)
    if sighup is None:
        return lambda: None
    try:
        loop.add_signal_handler(sighup, reload_on_signal, app)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals on this loop
        log.warning("SIGHUP cannot reload the IVR here; use `cti ivr reload`")
        return lambda: None

    def remove() -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(sighup)

    return remove


# -- cti ivr reload -------------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message") or f"HTTP {status}")
        self.status = status
        self.body = body


def _post(url: str, body: dict[str, Any] | None, token: str | None, timeout: float,
          cookies: SimpleCookie | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(body or {}).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # the configured server's URL
            if cookies is not None:
                for c in r.headers.get_all("Set-Cookie") or []:
                    cookies.load(c)
            data: dict[str, Any] = json.loads(r.read() or b"{}")
            return data
    except urllib.error.HTTPError as e:
        try:
            err = json.loads(e.read() or b"{}")
        except ValueError:
            err = {}
        raise _Refused(e.code, err if isinstance(err, dict) else {}) from None


def reload_over_http(base_url: str, username: str, password: str, timeout: float = 10.0) -> dict[str, Any]:
    """Log in as ``username`` and ask the server at ``base_url`` to reload; the server's answer
    (a 422's body too: ``ok`` false and the ``errors``).  Raises ``_Refused`` for any other refusal
    and ``OSError`` when the server cannot be reached."""
    base = base_url.rstrip("/")
    jar: SimpleCookie = SimpleCookie()
    _post(f"{base}/api/login", {"username": username, "password": password}, None, timeout, jar)
    morsel = jar.get(COOKIE_NAME)
    if morsel is None:
        raise _Refused(401, {"message": "the server sent no session token"})
    try:
        return _post(f"{base}/api/ivr/reload", None, morsel.value, timeout)
    except _Refused as e:
        if e.status == 422:
            return e.body
        raise


def cmd_reload(args: argparse.Namespace, load: Loader, out: TextIO | None = None,
               password: str | None = None) -> int:
    out = out or sys.stdout
    url: str | None = args.url
    if url is None:
        url = load(getattr(args, "config", None)).http.public_url
    pw = password if password is not None else os.environ.get(PASSWORD_ENV)
    if pw is None:
        pw = getpass.getpass(f"password of {args.user}: ")
    try:
        res = reload_over_http(url, args.user, pw, args.timeout)
    except _Refused as e:
        print(f"cti ivr reload: {url}: refused ({e.status}): {e}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as e:
        print(f"cti ivr reload: cannot reach {url}: {getattr(e, 'reason', e)}", file=sys.stderr)
        return EXIT_FAILURE
    if not res.get("ok"):
        errors = [str(x) for x in res.get("errors", [])]
        for line in errors:
            print(line, file=out)
        print(f"{len(errors)} error(s); the IVR flows stay at version {res.get('version')}", file=sys.stderr)
        return EXIT_USAGE
    print(f"IVR flows version {res['old_version']} -> {res['version']}: added {res['added']}, "
          f"removed {res['removed']}, changed {res['changed']}", file=out)
    return EXIT_OK


def add_reload_command(ivr_sub: Any, load: Loader) -> argparse.ArgumentParser:
    """Add ``reload`` to the ``cti ivr`` subparsers ``ivr_sub``."""
    r: argparse.ArgumentParser = ivr_sub.add_parser(
        "reload", help="make the running server take the flows as they are now (admin)",
        description="Ask the running `cti serve` to reload its IVR flows over its REST API (as an admin): "
                    "new calls take them, calls in progress finish on theirs; invalid flows change nothing "
                    "(one 'FILE: node ID: field: reason' line per error, exit 2).  The password comes from "
                    f"${PASSWORD_ENV} or a prompt.  SIGHUP to the server does the same.")
    r.add_argument("--url", default=None, metavar="URL", help="the server (default: http.public_url)")
    r.add_argument("--user", default="admin", metavar="NAME", help="an admin user (default %(default)s)")
    r.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="default %(default)s")
    r.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                   help="the TOML configuration file (default: config/cti.toml)")
    r.set_defaults(fn=lambda a: cmd_reload(a, load))
    return r
