"""The channel core of the simulated Asterisk: live channels, variables, CEL, bridges, DTMF,
MixMonitor and hangups, emitting each change as Asterisk 22's AMI events.

``Switch`` owns the channels (by name), the id counters, the global variables, the simulator's
background tasks and the tasks bound to one channel's life (the program a far half runs). It
knows nothing of the layers above it: events go up to an ``EventSink`` (the AMI server) that the
assembly attaches, and the ground truth of each call goes to the ``CallLedger`` it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from . import events as ev
from .config import SimConfig
from .ledger import CallLedger
from .model import Bridge, Channel, Headers, Ids
from .recording import Recording

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Where the AMI events go (the AMI server's sessions)."""

    def broadcast(self, headers: Headers) -> None: ...


class Switch:
    def __init__(self, config: SimConfig, ledger: CallLedger) -> None:
        self.config = config
        self.ledger = ledger
        self.ids = Ids()
        self.channels: dict[str, Channel] = {}
        self.globals: dict[str, str] = {}
        self.started = time.time()
        self.accepting = True  # False from a shutdown's start: no new channels (ast_begin_shutdown)
        self.sink: EventSink | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self._bound: dict[int, asyncio.Task[object]] = {}  # id(channel) -> the program it runs

    # ------------------------------------------------------------------ tasks

    def spawn(self, coro: Coroutine[Any, Any, object], name: str = "") -> asyncio.Task[object]:
        t: asyncio.Task[object] = asyncio.ensure_future(coro)
        if name:
            t.set_name(name)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        t.add_done_callback(_log_failure)
        return t

    def bind(self, ch: Channel, coro: Coroutine[Any, Any, object]) -> None:
        """Run ``coro`` for as long as ``ch`` lives: ``destroy`` cancels it."""
        self._bound[id(ch)] = self.spawn(coro)

    def unbind(self, ch: Channel) -> None:
        """Cancel the task bound to ``ch`` (its program gives way to another)."""
        t = self._bound.pop(id(ch), None)
        if t is not None:
            t.cancel()

    async def close(self) -> None:
        """Cancel every background task and wait for them."""
        tasks = list(self._tasks) + list(self._bound.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t

    def boot(self) -> None:
        """A fresh Asterisk after a restart: counters from zero, no globals, new channels allowed."""
        self.ids = Ids(after=self.ids.last_epoch)
        self.globals.clear()
        self.started = time.time()
        self.accepting = True

    # ------------------------------------------------------------------ helpers used everywhere

    def emit(self, headers: Headers) -> None:
        if self.sink is not None:
            self.sink.broadcast(headers)

    def scale(self, seconds: float) -> float:
        return seconds * self.config.time_factor

    def sound_samples(self, name: str) -> int:
        return self.config.sounds.get(name, self.config.default_sound_samples)

    def find(self, name: str) -> Channel | None:
        return self.channels.get(name)

    def set_var(self, ch: Channel, name: str, value: str) -> None:
        ch.vars[name] = value
        self.emit(ev.varset(ch, name, value))

    def answer(self, ch: Channel) -> None:
        if ch.state != 6:
            ch.state = 6
            self.cel(ch, "ANSWER")
            self.emit(ev.newstate(ch))

    # ------------------------------------------------------------------ CEL

    def cel(self, ch: Channel, name: str, extra: str = "", peer: str = "", base: bool = False) -> None:
        """One ``Event: CEL``. ``base``: the application the channel shows once its dialplan has
        returned (``AppDial2`` for an originated ``;1``, ``AppDial`` for a dialled one, else none)."""
        if not self.config.cel:
            return
        app, data = ch.meta.get("cel_base", ("", "")) if base else (ch.app, ch.appdata)
        self.emit(ev.cel(ch, name, app, data, extra, peer))

    def cel_hangup(self, ch: Channel, cause: int) -> None:
        """CEL ``HANGUP`` + ``CHAN_END`` (+ ``LINKEDID_END`` for the call's last channel), once."""
        if ch.meta.get("cel_ended"):
            return
        ch.meta["cel_ended"] = True
        self.cel(ch, "HANGUP", ev.cel_extra(hangupcause=cause, hangupsource=ch.meta.get("hangupsource", ""),
                                            dialstatus=ch.var("DIALSTATUS")), base=True)
        self.cel(ch, "CHAN_END", base=True)
        if not any(c.linkedid == ch.linkedid and c is not ch and not c.meta.get("cel_ended")
                   and not c.hungup for c in self.channels.values()):
            self.cel(ch, "LINKEDID_END", base=True)

    def cel_bridge(self, name: str, bridge: Bridge, ch: Channel) -> None:
        """CEL ``BRIDGE_ENTER`` (after joining) / ``BRIDGE_EXIT`` (after leaving): Peer = the others."""
        peer = ",".join(c.name for c in bridge.channels if c is not ch)
        self.cel(ch, name, ev.cel_extra(bridge_id=bridge.uniqueid, bridge_technology="simple_bridge"), peer)

    def stream_begin(self, ch: Channel, sound: str) -> None:
        self.cel(ch, "STREAM_BEGIN", ev.cel_extra(sound=sound, format="slin", language=ch.language))

    # ------------------------------------------------------------------ channels and bridges

    def announce(self, ch: Channel) -> None:
        """A new channel: CEL ``CHAN_START``, then ``Newchannel``."""
        self.cel(ch, "CHAN_START")
        self.emit(ev.newchannel(ch))

    def new_local_pair(self, exten: str, ctx: str, linkedid: str | None) -> tuple[Channel, Channel]:
        suffix = self.ids.local_suffix()
        u1 = self.ids.uniqueid()
        u2 = self.ids.uniqueid()
        base = f"Local/{exten}@{ctx}-{suffix}"
        c1 = Channel(f"{base};1", u1, linkedid or u1, ctx, exten, state=0)
        c2 = Channel(f"{base};2", u2, linkedid or u1, ctx, exten, state=4)
        c1.peer, c2.peer = c2, c1
        c1.meta["threadid"] = self.ids.threadid()
        c1.meta["device"] = c2.meta["device"] = f"Local/{exten}@{ctx}"
        c1.meta["local_exten"], c1.meta["local_ctx"] = exten, ctx
        self.channels[c1.name] = c1
        self.channels[c2.name] = c2
        return c1, c2

    def bridge_leave(self, bridge: Bridge, ch: Channel) -> None:
        self.media_tick(ch)
        if ch in bridge.channels:
            bridge.channels.remove(ch)
        self.cel_bridge("BRIDGE_EXIT", bridge, ch)
        self.emit(ev.bridge_leave(bridge, ch))
        ch.bridge = None

    def destroy(self, ch: Channel, cause: int, cel_after: bool = False) -> None:
        """The channel is gone: CEL HANGUP/CHAN_END (before its ``Hangup``, or after it with
        ``cel_after``), ``Hangup``."""
        if ch.hungup:
            return
        self.media_tick(ch)
        self.close_recordings(ch)  # a recording that runs at hangup ends without MixMonitorStop
        if not cel_after:
            self.cel_hangup(ch, cause)
        ch.hungup = True
        ch.kick()
        self.emit(ev.hangup(ch, cause))
        if cel_after:
            self.cel_hangup(ch, cause)
        device = ch.meta.get("device")
        if device:  # each Local half that goes re-evaluates the device: in use by another pair?
            pair = ch.name[:-2]
            busy = any(c.meta.get("device") == device and not c.hungup and c.name[:-2] != pair
                       for c in self.channels.values())
            # devstate runs on its own thread: the event trails the burst of the hangup
            asyncio.get_running_loop().call_soon(self.emit, ev.device_state(device, "INUSE" if busy else "NOT_INUSE"))
        self.channels.pop(ch.name, None)
        t = self._bound.pop(id(ch), None)
        if t is not None and t is not asyncio.current_task():
            t.cancel()

    # ------------------------------------------------------------------ DTMF

    async def send_dtmf(self, ch1: Channel, digit: str, ms: int = 100, begin: bool = True,
                        wait: bool = True) -> None:
        """A digit sent by the far half arrives on ``ch1`` (Direction: Received)."""
        if begin:
            self.emit(ev.dtmf_begin(ch1, digit))
            if wait:
                await asyncio.sleep(self.scale(ms / 1000))
        if ch1.hungup:
            return
        if not begin:
            self._cel_dtmf(ch1, digit, ms)
        self.emit(ev.dtmf_end(ch1, digit, ms))
        if begin:
            self._cel_dtmf(ch1, digit, ms)
        with contextlib.suppress(asyncio.QueueFull):
            ch1.dtmf.put_nowait(digit)
        self.ledger.digit(ch1, digit)

    def _cel_dtmf(self, ch: Channel, digit: str, ms: int) -> None:
        self.cel(ch, "DTMF", ev.cel_extra(digit=digit, duration_ms=ms))

    # ------------------------------------------------------------------ MixMonitor

    def start_mixmonitor(self, ch: Channel, file: str, options: str = "") -> None:
        """MixMonitor(file[,options]); ``b``: only bridged audio is written."""
        base = self.config.record_dir or "/var/spool/asterisk/monitor"
        path = file if file.startswith("/") else os.path.join(base, file)
        self.set_var(ch, "MIXMONITOR_FILENAME", path)
        ch.mixmonitor = path
        if self.config.record_dir is not None:
            bridged_only = "b" in options

            def flowing() -> bool:
                far = ch.peer
                return (not ch.hungup and (ch.bridge is not None or not bridged_only) and far is not None
                        and not far.hungup and bool(far.meta.get("playback")))

            ch.meta.setdefault("recordings", []).append(Recording(path, flowing, self.config.time_factor))
        self.emit(ev.mixmonitor_start(ch))

    def stop_mixmonitor(self, ch: Channel) -> bool:
        if ch.mixmonitor is None:
            return False
        ch.mixmonitor = None
        self.close_recordings(ch)
        self.emit(ev.mixmonitor_stop(ch))
        return True

    def mute_mixmonitor(self, ch: Channel, direction: str, on: bool) -> None:
        if direction.lower() in ("both", "read"):  # what the caller sends; the agents send no audio
            for rec in ch.meta.get("recordings", ()):
                rec.mute(on)

    def media_tick(self, ch: Channel | None) -> None:
        """Before anything changes what a recording hears (bridge, far half's media, hangup)."""
        for c in (ch, ch.peer if ch is not None else None):
            if c is not None:
                for rec in c.meta.get("recordings", ()):
                    rec.tick()

    def close_recordings(self, ch: Channel) -> None:
        for rec in ch.meta.pop("recordings", ()):
            rec.close()

    # ------------------------------------------------------------------ hangups and redirects

    def far_hangup(self, ch2: Channel, cause: int) -> None:
        """The ``;2`` half ends (its Hangup(), its dialplan ran out, or an AMI Hangup)."""
        if ch2.hungup:
            return
        ch1 = ch2.peer
        if ch2.meta.get("role") == "dialled" and ch1 is not None:
            caller = ch1.meta.get("dialer")
            if ch1.bridge is None or not isinstance(caller, Channel):
                resolve_outcome(ch2, "hangup")
                return
            bridge = ch1.bridge
            self.emit(ev.soft_hangup_request(ch2))
            self.emit(ev.hangup_request(ch1, cause))
            self.set_var(ch1, "BRIDGEPEER", "")
            self.set_var(caller, "BRIDGEPEER", "")
            self.destroy(ch2, cause)
            self.bridge_leave(bridge, ch1)
            self.destroy(ch1, cause)
            if caller in bridge.channels:
                self.bridge_leave(bridge, caller)
            self.emit(ev.bridge_destroy(bridge))
            caller.hangup_by_peer = True
            if caller.soft_hangup is None:
                caller.soft_hangup = cause
            caller.kick()
            return
        if ch2.meta.get("playback"):
            self.set_var(ch2, "PLAYBACKSTATUS", "SUCCESS")
        self.emit(ev.soft_hangup_request(ch2))
        if ch2.meta.get("playback"):
            self.cel(ch2, "STREAM_END")
        self.cel_hangup(ch2, cause)  # CEL sees the far half die before the near half's HangupRequest
        if ch1 is not None and not ch1.hungup:
            self.emit(ev.hangup_request(ch1, cause))
        self.destroy(ch2, cause)
        if ch1 is not None and not ch1.hungup:
            if ch1.soft_hangup is None:
                ch1.soft_hangup = cause
            if not ch1.meta.get("shutdown"):
                self.ledger.far_end_left(ch1)
            ch1.kick()

    def request_hangup(self, ch: Channel, cause: int | None) -> None:
        """AMI Hangup / AGI HANGUP of any channel."""
        if ch.name.endswith(";2"):
            self.far_hangup(ch, 16 if cause is None else cause)
            return
        if ch.meta.get("dialer") is not None and ch.peer is not None:  # an agent's ;1
            self.far_hangup(ch.peer, 16 if cause is None else cause)
            return
        if cause is None:
            cause = 16 if ch.bridge is not None else 0
        if ch.soft_hangup is None:
            ch.soft_hangup = cause
        ch.kick()

    def softhangup_all(self) -> None:
        """``ast_softhangup_all()`` of ``core stop|restart now``: no new channels; every channel gets
        the SHUTDOWN flag (``SoftHangupRequest`` Cause 4, all first); then each call ends as its
        threads see it (as a real Asterisk 22 did): a caller not in a bridge loses its far half
        first, both with cause 0; a bridged caller leaves the bridge with cause 16 and its agent's
        legs follow, the far one first (cause 0, the near one 16); a ringing Originate fails."""
        self.accepting = False
        chans = list(self.channels.values())
        for ch in chans:
            ch.meta["shutdown"] = True
            self.emit(ev.soft_hangup_request(ch, ev.SOFTHANGUP_SHUTDOWN))
        for ch in chans:
            if ch.hungup or not ch.name.endswith(";1") or ch.meta.get("dialer") is not None:
                continue  # far halves and dialled legs end with the channel that runs their call
            far = ch.peer
            if far is not None and resolve_outcome(far, "hangup"):
                continue  # an Originate still ringing its far half: it fails
            if ch.bridge is not None:
                self.request_hangup(ch, 16)
            elif far is not None and not far.hungup and far.meta.get("role") != "dialled":
                self.far_hangup(far, 0)
            else:
                self.request_hangup(ch, 0)

    def drop_all(self) -> None:
        """The process is gone: channels left after a shutdown vanish without an event."""
        for ch in list(self.channels.values()):
            ch.hungup = True
            ch.kick()
            t = self._bound.pop(id(ch), None)
            if t is not None:
                t.cancel()
        self.channels.clear()

    def redirect(self, ch: Channel, context: str, exten: str, priority: int) -> None:
        ch.pending_redirect = (context, exten, priority)
        ch.kick()


def resolve_outcome(ch2: Channel, outcome: str) -> bool:
    """Tell whoever dials the far half ``ch2`` how it went: ``answer``, ``busy`` or ``hangup``;
    False when that was already told."""
    fut = ch2.meta.get("outcome")
    if isinstance(fut, asyncio.Future) and not fut.done():
        fut.set_result(outcome)
        return True
    return False


def _log_failure(t: asyncio.Task[object]) -> None:
    if not t.cancelled() and t.exception() is not None:
        log.error("simulator task failed", exc_info=t.exception())
