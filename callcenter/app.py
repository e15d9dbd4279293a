"""Composition root: wires the Asterisk links, IVR, ACD, web edge and CRM store.

Nothing outside ``callcenter`` imports this module (``cli`` and ``simulate`` use it).  Start order: store, bus, ACD,
call-log writer, FastAGI server, web server; then the AMI links (``connect_ami``), whose
every (re)connect triggers a resynchronisation of that server's live calls.

An Asterisk that cannot be reached, or refuses the login, does not stop the process: its
client retries with backoff, logs each change of the link's state once, and the web edge
shows every server's link state (``link_states`` / ``watch_links``: the supervisor feed,
the agent page, ``GET /api/health``).

Several Asterisk servers (``[ami]`` and ``[[ami_servers]]``): one AMI client and one call
tracker each, call ids ``"<server>/<linkedid>"`` (two servers' linkedids may be equal);
a FastAGI session belongs to the server its connection comes from (``agi_peers``), and a
Redirect goes to the server its call id names.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from acd.calllog import CallLogWriter
from acd.distributor import Distributor
from acd.model import Agent, QueueConfig
from acd.offer import HoldHandler, OfferHandler
from acd.stats import StatsFold
from callcenter.settings import AmiSettings, Settings
from callcenter.startup import DB_VIA_SETTINGS, database_errors, listening
from crm_core.store import Store
from cti import dialplan as dp
from cti.agi.server import FastAgiServer
from cti.agi.session import AgiSession
from cti.ami import link as lk
from cti.ami.client import AmiClient
from cti.ami.protocol import Message
from cti.bus import Bus
from cti.calls import CallTracker
from cti.domain import RESYNC_GONE, CallEnded, CallQueued, DomainEvent
from ivr.flow import prompt_finder
from ivr.registry import FlowRegistry
from ivr.runner import IvrRunner
from screen_pop.deps import WebDeps
from screen_pop.web import build_app

log = logging.getLogger(__name__)


@dataclass
class AsteriskLink:
    """One Asterisk server: its settings, call tracker, (once connected) AMI client and the
    state of its link (``connecting`` until the client has a first outcome)."""

    settings: AmiSettings
    tracker: CallTracker
    client: AmiClient | None = None
    resyncs: list[float] = field(default_factory=list)  # ms per resync
    state: lk.LinkState = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.state = lk.initial(s.name, s.host, s.port, s.username, time.time())

    @property
    def name(self) -> str:
        return self.settings.name


class CtiApp:
    def __init__(self, settings: Settings, *, db_url: str | None = None,
                 agent_passwords: dict[str, str] | None = None, migrate: bool = True,
                 db_source: str = DB_VIA_SETTINGS) -> None:
        self.settings = settings
        self.db_url = db_url or settings.database.url
        self.db_source = db_source  # where db_url was configured, for the start-up error
        self.agent_passwords = agent_passwords or {}
        self.migrate = migrate  # False: refuse an outdated schema instead of upgrading it
        self.bus = Bus()
        several = len(settings.asterisks) > 1
        self.links: dict[str, AsteriskLink] = {
            a.name: AsteriskLink(a, CallTracker(a.name, namespaced=several)) for a in settings.asterisks}
        self.stats = StatsFold()
        self.store: Store | None = None
        self.agi: FastAgiServer | None = None
        self.distributor: Distributor | None = None
        self.calllog: CallLogWriter | None = None
        self.flows: FlowRegistry | None = None
        self._runner: web.AppRunner | None = None
        self._link_watchers: list[Callable[[lk.LinkState], None]] = []
        self.http_port = settings.http.port

    @property
    def first(self) -> AsteriskLink:
        return next(iter(self.links.values()))

    @property
    def tracker(self) -> CallTracker:
        """The first (or only) server's call tracker."""
        return self.first.tracker

    @property
    def ami(self) -> AmiClient | None:
        """The first (or only) server's AMI client."""
        return self.first.client

    @property
    def resyncs(self) -> list[float]:
        return [ms for link in self.links.values() for ms in link.resyncs]

    # -- lifecycle --------------------------------------------------------------------

    async def start(self, *, http_port: int | None = None, agi_port: int | None = None) -> None:
        """Start everything but the AMI links.  A failure raises (a port taken:
        :class:`~callcenter.startup.ListenError`, the database:
        :class:`~callcenter.startup.DatabaseError` or ``SchemaOutdated``, a flow: ``FlowError``)
        and leaves what did start for :meth:`stop`."""
        s = self.settings
        with database_errors(self.db_url, self.db_source):
            self.store = await Store.open(self.db_url, create=self.migrate)
        agents = [Agent(a.id, a.name, a.id, dict(a.skills)) for a in s.agents]
        for a in s.agents:
            await self.store.upsert_agent(a.id, a.name, a.id, dict(a.skills))
            pw = self.agent_passwords.get(a.id) or a.password
            if pw:
                await self.store.set_user(f"agent{a.id}", pw, "agent", agent_id=a.id)
        queues = {name: QueueConfig(name, tuple(q.skills), q.ring_timeout_s, q.wrap_up_s, q.record,
                                    q.max_wait_s) for name, q in s.queues.items()}
        self.distributor = Distributor(self.bus, _LateCallControl(self), queues, agents)
        await self.distributor.start()
        self.calllog = CallLogWriter(self.bus, self.store, server=self.first.name)
        await self.calllog.start()
        for et in _stats_types():
            self.bus.on(et, self.stats.apply)

        # every problem of every file, or the default flow missing, or (with ivr.sounds_dirs) a
        # prompt found in none of the sound directories: FlowErrors, and no call is answered
        known = prompt_finder(s.ivr.sounds_dirs) if s.ivr.sounds_dirs else None
        self.flows = FlowRegistry.load(Path(s.ivr.flows_dir), default_flow=s.ivr.default_flow, bus=self.bus,
                                       known_prompts=known)
        default_q = queues.get(s.acd.default_queue)
        # ivr.runner.CustomerLike.value_tier says str, the store's CustomerDTO (and the engine's
        # LookupResult.tier) str | None: the protocol in ivr/ is the one to widen
        self.ivr = IvrRunner(self.flows, self.bus, self.store)
        self.agi = FastAgiServer(host=s.agi.bind_host, port=s.agi.port if agi_port is None else agi_port,
                                 max_sessions=s.agi.max_sessions, command_timeout=s.agi.command_timeout_s,
                                 fallback=self._agi_fallback)
        self.agi.route(dp.SCRIPT_IVR_PREFIX, self._run_ivr)
        self.agi.route(dp.SCRIPT_HOLD, HoldHandler())
        self.agi.route(dp.SCRIPT_OFFER_PREFIX, OfferHandler(self.distributor))
        with listening("FastAGI", self.agi.host, self.agi.port, "agi"):
            await self.agi.start()
        self._default_queue = default_q

        deps = WebDeps(bus=self.bus, auth=self.store, customers=self.store, acd=self.distributor, links=self,
                       ivr=self)
        app = build_app(deps, allowed_origins=list(s.http.allowed_origins))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = s.http.port if http_port is None else http_port
        site = web.TCPSite(self._runner, s.http.bind_host, port)
        with listening("HTTP", s.http.bind_host, port, "http"):
            await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.http_port = server.sockets[0].getsockname()[1]
        log.info("cti started", extra={"http_port": self.http_port, "agi_port": self.agi.port})

    async def connect_ami(self, host: str | None = None, port: int | None = None, *,
                          where: dict[str, tuple[str, int]] | None = None, timeout: float = 10.0) -> None:
        """Start every server's AMI client; ``host``/``port`` override the first server's
        address, ``where`` any server's (by name).

        Waits (at most ``timeout`` seconds, all servers at once) for each link's first
        outcome: logged in, or a failure (unreachable, login refused ...), which its client
        has logged.  It never raises for a link that is down: the client goes on retrying
        with backoff, and the link's state is there for the pages and ``/api/health``."""
        where = dict(where or {})
        if host or port:
            s0 = self.first.settings
            where.setdefault(self.first.name, (host or s0.host, port or s0.port))
        clients: list[AmiClient] = []
        for link in self.links.values():
            s = link.settings
            h, p = where.get(link.name, (s.host, s.port))
            client = link.client = AmiClient(h, p, s.username, s.secret.get_secret_value(), name=s.name,
                                             auth=s.auth, events=s.events)
            client.add_listener(functools.partial(self._on_ami_event, link))
            client.on_connected(functools.partial(self._resync, link))
            client.on_disconnected(link.tracker.link_lost)
            client.on_link_state(functools.partial(self._link_state, link))
            self._link_state(link, client.link)
            await client.start(wait=False)
            clients.append(client)
        await asyncio.gather(*(c.wait_attempted(timeout) for c in clients))

    # -- the links' state, for the web edge (screen_pop.deps.AsteriskLinks) -------------

    def link_states(self) -> list[lk.LinkState]:
        return [link.state for link in self.links.values()]

    def watch_links(self, fn: Callable[[lk.LinkState], None]) -> Callable[[], None]:
        """``fn(state)`` on every update of a link's state; returns the call that stops it."""
        self._link_watchers.append(fn)

        def unwatch() -> None:
            if fn in self._link_watchers:
                self._link_watchers.remove(fn)

        return unwatch

    def _link_state(self, link: AsteriskLink, state: lk.LinkState) -> None:
        link.state = state
        for fn in list(self._link_watchers):
            try:
                fn(state)
            except Exception:
                log.exception("link-state watcher failed", extra={"server": link.name})

    async def stop(self) -> None:
        for link in self.links.values():
            if link.client:
                await link.client.stop()
        if self.agi:
            await self.agi.stop()
        if self.distributor:
            await self.distributor.stop()
        if self._runner:
            await self._runner.cleanup()
        if self.calllog:
            await self.calllog.stop()
        if self.store:
            await self.store.close()

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- wiring -----------------------------------------------------------------------

    def _on_ami_event(self, link: AsteriskLink, msg: Message) -> None:
        for ev in link.tracker.feed(msg):
            self.bus.publish(ev)

    async def _resync(self, link: AsteriskLink) -> None:
        """Rebuild the live calls after a (re)connect, and close the logs of calls gone meanwhile.

        Two sources of "gone": calls the tracker knew (``resync_begin``), and call logs left
        open by calls that started and ended while the link was down (the tracker never saw
        them, but the IVR wrote their rows over FastAGI).  Both are taken *before* the listing
        is requested, so a call that starts while the listing is produced is never closed.
        """
        assert link.client is not None
        tracker = link.tracker
        t0 = time.perf_counter()
        known = tracker.resync_begin()
        open_logs = await self._open_call_logs(link)
        r = await link.client.send_action("CoreShowChannels", timeout=5.0)
        closed: set[str] = set()
        for ev in tracker.resync(r.events, known):
            if isinstance(ev, CallEnded):
                closed.add(ev.call_id)
            self.bus.publish(ev)
        live = {tracker.call_id(m.get("Linkedid") or "") for m in r.events}
        tracked = {c.call_id for c in tracker.calls.values()}
        for call_id in sorted(open_logs - live - tracked - closed):
            self.bus.publish(CallEnded(call_id, 0, "", "unknown", RESYNC_GONE, time.time()))
        link.resyncs.append((time.perf_counter() - t0) * 1000)
        if self.distributor is not None:
            self.distributor.retry_waiting()  # offers that failed while the link was down

    async def _open_call_logs(self, link: AsteriskLink) -> set[str]:
        """The open call logs of ``link``'s server (each server resyncs only its own)."""
        if self.store is None or self.calllog is None:
            return set()
        await self.calllog.drain()
        rows = await self.store.list_calls(outcome="in_progress", limit=100_000)
        if not link.tracker.namespaced:
            return {row.call_id for row in rows}
        prefix = link.name + "/"
        return {row.call_id for row in rows if row.call_id.startswith(prefix)}

    # -- several servers --------------------------------------------------------------

    def link_of_session(self, env: dict[str, str], peer: str | None = None) -> AsteriskLink:
        """The server a FastAGI session belongs to: the one its connection comes from
        (``agi_peers``); among several on one address, the one whose tracker knows the
        channel; else the first."""
        links = list(self.links.values())
        if len(links) == 1:
            return links[0]
        if peer:
            by_peer = [lk for lk in links if peer in lk.settings.agi_peer_hosts()]
            if len(by_peer) == 1:
                return by_peer[0]
            links = by_peer or links
        chan = env.get("agi_channel", "")
        knows = [lk for lk in links if lk.tracker.has_channel(chan, env.get("agi_uniqueid", ""))]
        if len(knows) == 1:
            return knows[0]
        log.error("FastAGI session from an address no server lists in agi_peers; taking %s",
                  links[0].name, extra={"channel": chan, "peer": peer})
        return links[0]

    def agi_call_id(self, session: AgiSession) -> str:
        """The call id of a FastAGI session on the caller's channel (its uniqueid is the call's
        linkedid), namespaced like the tracker's."""
        env = session.env
        return self.link_of_session(env, _peer_host(session)).tracker.call_id(env.get("agi_uniqueid", ""))

    def link_of_call(self, call_id: str, channel: str = "") -> AsteriskLink:
        """The server of a call: named by its id (``<server>/<linkedid>``) when there are
        several; channel names repeat across servers, so they only break a tie for an id
        without a server (a call adopted before namespacing)."""
        links = list(self.links.values())
        if len(links) == 1:
            return links[0]
        server, sep, _lid = call_id.rpartition("/")
        if sep and server in self.links:
            return self.links[server]
        knows = [lk for lk in links if channel and lk.tracker.has_channel(channel)]
        if len(knows) == 1:
            return knows[0]
        raise LookupError(f"no single Asterisk server holds call {call_id!r} (channel {channel!r})")

    async def _run_ivr(self, session: AgiSession) -> None:
        flow = session.environment.script[len(dp.SCRIPT_IVR_PREFIX):] or self.settings.ivr.default_flow
        await self.ivr.run(session, flow, self.agi_call_id(session))

    async def _agi_fallback(self, session: AgiSession, error: BaseException | None) -> None:
        """A failed IVR still sends the caller to the default queue (never silence)."""
        if not session.environment.script.startswith(dp.SCRIPT_IVR_PREFIX):
            return
        q = self._default_queue
        if q is None:
            return
        cti_call_id = await session.get_variable(dp.VAR_CALL_ID) or ""
        env = session.env
        self.bus.publish(CallQueued(
            self.agi_call_id(session), cti_call_id, session.channel, q.name, tuple(q.skills), 0,
            env.get("agi_callerid", ""), env.get("agi_calleridname", ""), None, ("fallback",), "",
            time.time()))
        await session.set_variable(dp.VAR_NEXT, dp.NEXT_QUEUE)

    async def call_control_redirect(self, channel: str, context: str, exten: str, priority: int,
                                    call_id: str = "") -> None:
        client = self.link_of_call(call_id, channel).client
        if client is None:
            raise RuntimeError("AMI not connected")
        await client.redirect(channel, context, exten, priority)

    def snapshot(self) -> dict[str, Any]:
        assert self.distributor is not None
        return self.distributor.snapshot()

    # -- IVR hot reload (screen_pop.deps.IvrReloader; SIGHUP: callcenter.ivr_reload) ----

    def reload_ivr(self, by: str) -> dict[str, Any]:
        """Reload the IVR flows: new calls take the new version, calls in progress keep theirs;
        a bad flow changes nothing (``ok`` false, one ``FILE: node ID: field: reason`` line each
        in ``errors``, logged too).  ``by``: who asked (a username, ``SIGHUP``)."""
        if self.flows is None:
            raise RuntimeError("the IVR has not started")
        return self.flows.reload(by).to_json()


def _peer_host(session: AgiSession) -> str | None:
    """The address a FastAGI connection came from (the Asterisk server's)."""
    peer = session.peer
    return peer[0] if peer else None


class _LateCallControl:
    """Call control bound to the app's AMI client, which connects after the ACD starts."""

    def __init__(self, app: CtiApp) -> None:
        self.app = app

    async def redirect(self, channel: str, context: str, exten: str, priority: int = 1, *,
                       call_id: str = "") -> None:
        await self.app.call_control_redirect(channel, context, exten, priority, call_id)


def _stats_types() -> Iterable[type[DomainEvent]]:
    from cti import domain as d

    return (d.CallQueued, d.CallOffered, d.CallAnswered, d.CallAbandoned, d.AgentStateChanged, d.CallEnded)


async def wait_until(pred: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(interval)
    return bool(pred())
