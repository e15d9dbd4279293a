"""``AsteriskSim``: the top-level async context manager that owns channels, the AMI server,
the dialplan runners and the simulated callers and phones."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from . import events as ev
from .actors import AgentPhone, Caller, CallRecord, Step, default_phones
from .manager_conf import UserSpec, load_manager_conf
from .model import Bridge, Channel, Headers, Ids
from .recording import Recording

log = logging.getLogger(__name__)

SOUNDS = {"hello-world": 11234, "beep": 3404, "demo-congrats": 232000}


@dataclass(frozen=True)
class SimConfig:
    ami_host: str = "127.0.0.1"
    ami_port: int = 0
    users: dict[str, UserSpec] = field(default_factory=lambda: {
        "ctilp": ("secret", frozenset({"call", "dialplan", "user", "agent", "reporting"}),
                  frozenset({"call", "originate", "reporting"})),
    })
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    agi_source: str | None = None  # local address the FastAGI connections come from (several servers)
    # MixMonitor files: written under this directory when set (MIXMONITOR_FILENAME then shows it);
    # None: no files, and MIXMONITOR_FILENAME shows Asterisk's /var/spool/asterisk/monitor/
    record_dir: str | None = None
    time_factor: float = 1.0
    phones: tuple[AgentPhone, ...] = field(default_factory=default_phones)
    cel: bool = True  # cel_manager on (events=ALL), as in the traces; CEL is class call
    write_timeout_ms: int = 100
    auth_fail_delay_s: float = 1.0
    sounds: dict[str, int] = field(default_factory=lambda: dict(SOUNDS))
    default_sound_samples: int = 8000
    max_event_queue: int = 10000
    # queues.conf of the traces' Asterisk (01, v3-05): only listed by QueueStatus, never used
    queues: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
        ("support", "ringall", (("Agent1001", "Local/1001@agents/n"),)),)

    @classmethod
    def from_manager_conf(cls, path: str, keep_default_users: bool = True, **kw: object) -> SimConfig:
        """Users (secret, read/write classes, ``eventfilter`` lines, ``writetimeout``) from a
        manager.conf file such as the project's ``asterisk/manager.conf``; they replace default
        users of the same name."""
        users: dict[str, UserSpec] = dict(cls().users) if keep_default_users else {}
        users.update(load_manager_conf(path))
        return cls(users=users, **kw)  # type: ignore[arg-type]


class AsteriskSim:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.ids = Ids()
        self.channels: dict[str, Channel] = {}
        self.record: dict[str, CallRecord] = {}
        self.phones = {p.ext: p for p in self.config.phones}
        self.globals: dict[str, str] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._far_tasks: dict[int, asyncio.Task[object]] = {}
        self._ended: dict[str, asyncio.Event] = {}
        self.ami: AmiServer | None = None  # noqa: F821
        self.started = time.time()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> AsteriskSim:
        from .ami import AmiServer

        self.ami = AmiServer(self)
        await self.ami.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        tasks = list(self._tasks) + list(self._far_tasks.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        if self.ami is not None:
            await self.ami.stop()

    @property
    def ami_port(self) -> int:
        assert self.ami is not None
        return self.ami.port

    def drop_ami_clients(self) -> None:
        """Cut every AMI connection at once (chaos tests)."""
        if self.ami is not None:
            self.ami.drop_all()

    def spawn(self, coro: object, name: str = "") -> asyncio.Task[object]:
        t: asyncio.Task[object] = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        t.add_done_callback(_log_failure)
        return t

    # ------------------------------------------------------------------ helpers used everywhere

    def emit(self, headers: Headers) -> None:
        if self.ami is not None:
            self.ami.broadcast(headers)

    def scale(self, seconds: float) -> float:
        return seconds * self.config.time_factor

    def sound_samples(self, name: str) -> int:
        return self.config.sounds.get(name, self.config.default_sound_samples)

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

    def announce(self, ch: Channel) -> None:
        """A new channel: CEL ``CHAN_START``, then ``Newchannel``."""
        self.cel(ch, "CHAN_START")
        self.emit(ev.newchannel(ch))

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

    def bridge_leave(self, bridge: Bridge, ch: Channel) -> None:
        self.media_tick(ch)
        if ch in bridge.channels:
            bridge.channels.remove(ch)
        self.cel_bridge("BRIDGE_EXIT", bridge, ch)
        self.emit(ev.bridge_leave(bridge, ch))
        ch.bridge = None

    def stream_begin(self, ch: Channel, sound: str) -> None:
        self.cel(ch, "STREAM_BEGIN", ev.cel_extra(sound=sound, format="slin", language=ch.language))

    def find(self, name: str) -> Channel | None:
        return self.channels.get(name)

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
        t = self._far_tasks.pop(id(ch), None)
        if t is not None and t is not asyncio.current_task():
            t.cancel()

    async def wait_digit(self, ch: Channel, timeout: float | None) -> object:
        from .agi import INTERRUPT

        if ch.interrupted:
            return INTERRUPT
        ch.settled.set()
        if not ch.dtmf.empty():
            return ch.dtmf.get_nowait()
        ch.wake.clear()
        getter = asyncio.ensure_future(ch.dtmf.get())
        waiter = asyncio.ensure_future(ch.wake.wait())
        try:
            await asyncio.wait({getter, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            digit = getter.result()
            if ch.interrupted:
                ch.dtmf.put_nowait(digit)
                return INTERRUPT
            return digit
        return INTERRUPT if ch.interrupted else None

    async def send_dtmf(self, ch1: Channel, digit: str, ms: int = 100, begin: bool = True,
                        wait: bool = True) -> None:
        """A digit sent by the far half arrives on ``ch1`` (Direction: Received)."""
        if begin:
            self.emit(ev.dtmf_begin(ch1, digit))
            if wait:
                await asyncio.sleep(self.scale(ms / 1000))
        if ch1.hungup:
            return
        cel = lambda: self.cel(ch1, "DTMF", ev.cel_extra(digit=digit, duration_ms=ms))  # noqa: E731
        if not begin:
            cel()
        self.emit(ev.dtmf_end(ch1, digit, ms))
        if begin:
            cel()
        with contextlib.suppress(asyncio.QueueFull):
            ch1.dtmf.put_nowait(digit)
        rec = self.record.get(ch1.linkedid)
        if rec is not None and ch1.name == rec.channel:
            rec.ivr_digits += digit

    # ------------------------------------------------------------------ recording

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

    # ------------------------------------------------------------------ far halves ([callers], [agent-phones])

    def dial_target(self, device: str) -> tuple[str, str, list[Step]] | None:
        m = re.fullmatch(r"Local/([^@]+)@([^/,]+)(?:/n)?", device)
        if m is None:
            return None
        exten, ctx = m.groups()
        if ctx == "agent-phones":
            phone = self.phones.get(exten)
            prog = phone.program() if phone else None
            return (exten, ctx, prog) if prog else None
        if ctx == "callers":
            stand_in = {"talk": Caller("", playback=True), "abandon": Caller("", patience_s=6),
                        "digits": Caller("", digits_plan=((2, "2"),))}.get(exten, Caller(""))
            return exten, ctx, stand_in.program()
        return None

    def start_far(self, ch2: Channel, program: list[Step]) -> None:
        t = self.spawn(self._run_far(ch2, program))
        self._far_tasks[id(ch2)] = t

    async def _run_far(self, ch2: Channel, program: list[Step]) -> None:
        for prio, (app, data) in enumerate(program, 1):
            if ch2.hungup:
                return
            ch2.priority, ch2.app, ch2.appdata = prio, app, data
            self.emit(ev.newexten(ch2, app, data))
            if app == "Answer":
                self.answer(ch2)
                if ch2.meta.get("role") == "dialled":
                    self.emit(ev.device_state(ch2.meta["device"], "INUSE"))
                _resolve(ch2, "answer")
                # the far half's next step shows once the near half has moved on and waits for
                # media (the traces: after the IVR's first long command, or the hold AGI's start)
                if ch2.peer is not None:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(ch2.peer.settled.wait(), 0.1)
            elif app == "Wait":
                if ch2.meta.get("role") == "dialled" and ch2.state != 6 and prio == len(program):
                    await asyncio.Event().wait()  # rings until Dial gives up
                await asyncio.sleep(self.scale(float(data)))
            elif app == "Busy":
                ch2.state = 7
                self.emit(ev.newstate(ch2))
                _resolve(ch2, "busy")
                await asyncio.Event().wait()
            elif app == "Playback":
                self.media_tick(ch2)
                ch2.meta["playback"] = True
                self.stream_begin(ch2, data)
                await asyncio.sleep(self.scale(self.sound_samples(data) / 8000))
                self.media_tick(ch2)
                ch2.meta["playback"] = False
                self.cel(ch2, "STREAM_END")
                self.set_var(ch2, "PLAYBACKSTATUS", "SUCCESS")
            elif app == "SendDTMF":
                if ch2.peer is not None:
                    for d in data:
                        await self.send_dtmf(ch2.peer, d)
            elif app == "Hangup":
                ch2.meta["hangupsource"] = "dialplan/builtin"
                if ch2.meta.get("role") != "dialled":
                    self.cel_hangup(ch2, 16)  # the traces: CEL sees it before SoftHangupRequest
                self.far_hangup(ch2, 16)
                return
        self.far_hangup(ch2, 16)

    def far_hangup(self, ch2: Channel, cause: int) -> None:
        """The ``;2`` half ends (its Hangup(), its dialplan ran out, or an AMI Hangup)."""
        if ch2.hungup:
            return
        ch1 = ch2.peer
        if ch2.meta.get("role") == "dialled" and ch1 is not None:
            caller = ch1.meta.get("dialer")
            if ch1.bridge is None or not isinstance(caller, Channel):
                _resolve(ch2, "hangup")
                return
            bridge = ch1.bridge
            self.emit(ev.soft_hangup_request(ch2, cause))
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
        self.emit(ev.soft_hangup_request(ch2, cause))
        if ch2.meta.get("playback"):
            self.cel(ch2, "STREAM_END")
        self.cel_hangup(ch2, cause)  # CEL sees the far half die before the near half's HangupRequest
        if ch1 is not None and not ch1.hungup:
            self.emit(ev.hangup_request(ch1, cause))
        self.destroy(ch2, cause)
        if ch1 is not None and not ch1.hungup:
            if ch1.soft_hangup is None:
                ch1.soft_hangup = cause
            rec = self.record.get(ch1.linkedid)
            if rec is not None and rec.answered_by is None:
                rec.abandoned = True
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

    def redirect(self, ch: Channel, context: str, exten: str, priority: int) -> None:
        ch.pending_redirect = (context, exten, priority)
        ch.kick()

    # ------------------------------------------------------------------ ground truth

    def note_answer(self, ch: Channel, agent: str) -> None:
        rec = self.record.get(ch.linkedid)
        if rec is not None:
            rec.answered_by = agent
            rec.offers.append((agent, "ANSWER"))
        far = ch.peer
        caller = rec.caller if rec else None
        if far is not None and caller is not None and caller.talk_s is not None:
            t = self._far_tasks.pop(id(far), None)
            if t is not None:
                t.cancel()
            self.spawn(self._talk(far, caller.talk_s))

    async def _talk(self, far: Channel, talk_s: float) -> None:
        await asyncio.sleep(self.scale(talk_s))
        self.far_hangup(far, 16)

    def note_offer(self, ch: Channel, agent: str, status: str) -> None:
        rec = self.record.get(ch.linkedid)
        if rec is not None:
            rec.offers.append((agent, status))

    def note_end(self, ch: Channel, cause: int) -> None:
        rec = self.record.get(ch.linkedid)
        if rec is not None and rec.channel == ch.name:
            rec.ended = time.time()
            rec.cause = cause
            rec.call_id = ch.var("CTI_CALL_ID")
            ev_ = self._ended.get(ch.linkedid)
            if ev_ is not None:
                ev_.set()

    # ------------------------------------------------------------------ traffic

    async def place_call(self, caller: Caller, action_id: str | None = None) -> str:
        """Originate ``Local/<exten>@callers`` into ``cti-inbound,5551000,1``; -> the linkedid."""
        from .originate import originate

        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        originate(self, channel=f"Local/{caller.local_exten}@callers", context="cti-inbound",
                  exten="5551000", priority=1, callerid=caller.callerid, action_id=action_id,
                  caller=caller, on_created=lambda uid: done.done() or done.set_result(uid))
        return await done

    async def wait_in_app(self, linkedid: str, app: str = "MusicOnHold", timeout: float = 3.0) -> Channel:
        """The caller's channel of call ``linkedid`` once it runs ``app`` (on hold, by default)."""
        deadline = time.monotonic() + timeout
        while True:
            ch = self.find(self.record[linkedid].channel)
            if ch is not None and ch.app == app:
                return ch
            if time.monotonic() > deadline:
                raise TimeoutError(f"call {linkedid} not in {app} after {timeout}s")
            await asyncio.sleep(0.01)

    async def wait_ended(self, linkedid: str, timeout: float | None = None) -> CallRecord:
        rec = self.record[linkedid]
        if rec.ended is None:
            await asyncio.wait_for(self._ended[linkedid].wait(), timeout)
        return rec

    async def run_traffic(self, n_calls: int, rate_per_s: float,
                          caller_factory: Callable[[int], Caller]) -> list[CallRecord]:
        """Place ``n_calls`` calls at ``rate_per_s`` (real time); wait until all have ended."""
        ids = []
        for i in range(n_calls):
            ids.append(await self.place_call(caller_factory(i)))
            if i + 1 < n_calls and rate_per_s > 0:
                await asyncio.sleep(1.0 / rate_per_s)
        for lid in ids:
            await self.wait_ended(lid)
        return [self.record[lid] for lid in ids]


def _resolve(ch2: Channel, outcome: str) -> None:
    fut = ch2.meta.get("outcome")
    if isinstance(fut, asyncio.Future) and not fut.done():
        fut.set_result(outcome)


def _log_failure(t: asyncio.Task[object]) -> None:
    if not t.cancelled() and t.exception() is not None:
        log.error("simulator task failed", exc_info=t.exception())
